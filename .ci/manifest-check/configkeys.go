package main

import (
	"fmt"
	"sort"
	"strings"

	"github.com/BurntSushi/toml"
)

// configKeys is the set of keys the rivulet binary accepts, read from its
// built-in defaults (config/default.toml, compiled into the library and
// listing every key) when -rivulet-defaults is given. The binary refuses an
// unknown key at start, so a rendered rivulet.toml with one would crash
// every pod.
type configKeys struct {
	leaves map[string]bool // "http.listen"
	tables map[string]bool // "http"
	open   map[string]bool // empty tables in the defaults: free-form ("app", "kafka.common")
}

func loadConfigKeys(path string) (*configKeys, error) {
	var defaults map[string]any
	if _, err := toml.DecodeFile(path, &defaults); err != nil {
		return nil, err
	}
	keys := &configKeys{leaves: map[string]bool{}, tables: map[string]bool{}, open: map[string]bool{}}
	var walk func(prefix string, table map[string]any)
	walk = func(prefix string, table map[string]any) {
		if len(table) == 0 && prefix != "" {
			keys.open[strings.TrimSuffix(prefix, ".")] = true
		}
		for k, v := range table {
			if sub, ok := v.(map[string]any); ok {
				keys.tables[prefix+k] = true
				walk(prefix+k+".", sub)
			} else {
				keys.leaves[prefix+k] = true
			}
		}
	}
	walk("", defaults)
	return keys, nil
}

// unknown returns the keys of a rendered config the binary would refuse.
func (keys *configKeys) unknown(text string) ([]string, error) {
	var config map[string]any
	if _, err := toml.Decode(text, &config); err != nil {
		return nil, err
	}
	var bad []string
	var walk func(prefix string, table map[string]any)
	walk = func(prefix string, table map[string]any) {
		if keys.open[strings.TrimSuffix(prefix, ".")] {
			return
		}
		for k, v := range table {
			if sub, ok := v.(map[string]any); ok && keys.tables[prefix+k] {
				walk(prefix+k+".", sub)
			} else if !keys.leaves[prefix+k] {
				bad = append(bad, prefix+k)
			}
		}
	}
	walk("", config)
	sort.Strings(bad)
	return bad, nil
}

func checkConfigKeys(name, text string) []error {
	if rivuletKeys == nil || name != "rivulet.toml" {
		return nil
	}
	bad, err := rivuletKeys.unknown(text)
	if err != nil {
		return nil // reported as invalid TOML
	}
	var errs []error
	for _, key := range bad {
		errs = append(errs, fmt.Errorf("data[%s]: %q is not a key of the rivulet config (not in %s)", name, key, *rivuletDefaults))
	}
	return errs
}

package dev.rivulet.testregistry;

import io.apicurio.common.apps.config.DynamicConfigPropertyList;
import java.util.ArrayList;
import javax.enterprise.inject.Produces;
import javax.inject.Singleton;

/**
 * Stands in for the Quarkus extension apicurio-common-app-components-config-index,
 * whose build-time half (the -deployment artifact) is not on Maven Central: that
 * extension lists the settings an administrator may change at run time. This
 * test registry has none, so the list is empty and every setting is the static
 * one from application.properties or -D options.
 */
@Singleton
public class NoDynamicConfigProperties {
    @Produces
    @Singleton
    public DynamicConfigPropertyList dynamicConfigProperties() {
        return new DynamicConfigPropertyList(new ArrayList<>());
    }
}

package rivulet.bench;

import com.sun.tools.attach.VirtualMachine;
import java.util.Set;
import java.util.TreeMap;
import javax.management.MBeanServerConnection;
import javax.management.ObjectName;
import javax.management.remote.JMXConnector;
import javax.management.remote.JMXConnectorFactory;
import javax.management.remote.JMXServiceURL;

/**
 * Reads the test broker's request metrics (issue 15: what each client asks
 * of the broker) over JMX, attaching to the broker's JVM by pid (the Attach
 * API starts its local management agent; the broker needs no JMX port).
 *
 * <pre>
 * java -cp rivulet-kstreams-bench.jar rivulet.bench.BrokerMetrics &lt;broker-pid&gt;
 * </pre>
 *
 * Prints one line per request type the broker has served since it started,
 * tab-separated: {@code request count bytes_total total_ms local_ms remote_ms};
 * counts and sums are cumulative, so the driver takes the difference of two
 * snapshots around a run. {@code bytes_total} is the sum of request sizes
 * ({@code RequestBytes}: Count x Mean), the times are the sums of
 * {@code TotalTimeMs}, {@code LocalTimeMs} and {@code RemoteTimeMs} (remote
 * time is where a fetch waits for data or a produce for replication).
 */
public final class BrokerMetrics {

    private BrokerMetrics() {}

    public static void main(String[] args) throws Exception {
        if (args.length != 1) {
            System.err.println("usage: java -cp rivulet-kstreams-bench.jar rivulet.bench.BrokerMetrics <broker-pid>");
            System.exit(2);
        }
        VirtualMachine vm = VirtualMachine.attach(args[0]);
        String address;
        try {
            address = vm.startLocalManagementAgent();
        } finally {
            vm.detach();
        }
        try (JMXConnector c = JMXConnectorFactory.connect(new JMXServiceURL(address))) {
            MBeanServerConnection s = c.getMBeanServerConnection();
            TreeMap<String, double[]> rows = new TreeMap<>();
            collect(s, "RequestsPerSec", "Count", rows, 0, false);
            collect(s, "RequestBytes", "Mean", rows, 1, true);
            collect(s, "TotalTimeMs", "Mean", rows, 2, true);
            collect(s, "LocalTimeMs", "Mean", rows, 3, true);
            collect(s, "RemoteTimeMs", "Mean", rows, 4, true);
            StringBuilder out = new StringBuilder();
            for (var e : rows.entrySet()) {
                double[] v = e.getValue();
                out.append(String.format("%s\t%.0f\t%.0f\t%.1f\t%.1f\t%.1f%n", e.getKey(), v[0], v[1], v[2], v[3], v[4]));
            }
            System.out.print(out);
        }
    }

    /**
     * Adds the metric {@code name} of every request type to {@code rows} at
     * {@code col}: the attribute itself, or Count x attribute for a histogram
     * ({@code times}), which is the sum of the recorded values.
     */
    private static void collect(MBeanServerConnection s, String name, String attr, TreeMap<String, double[]> rows,
            int col, boolean times) throws Exception {
        Set<ObjectName> names = s.queryNames(new ObjectName("kafka.network:type=RequestMetrics,name=" + name + ",*"), null);
        for (ObjectName n : names) {
            String request = n.getKeyProperty("request");
            // RequestsPerSec has one MBean per request version: they are summed.
            if (request == null) {
                continue;
            }
            double v = ((Number) s.getAttribute(n, attr)).doubleValue();
            if (times) {
                v *= ((Number) s.getAttribute(n, "Count")).doubleValue();
            }
            rows.computeIfAbsent(request, k -> new double[5])[col] += v;
        }
    }
}

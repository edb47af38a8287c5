package attribution.metrics;

import org.apache.flink.metrics.prometheus.AbstractPrometheusReporter;
import org.apache.flink.metrics.reporter.MetricReporter;
import org.apache.flink.metrics.reporter.MetricReporterFactory;
import org.apache.flink.util.PortRange;

import io.prometheus.client.CollectorRegistry;
import io.prometheus.client.exporter.HTTPServer;

import java.io.IOException;
import java.lang.reflect.Field;
import java.net.InetSocketAddress;
import java.util.Iterator;
import java.util.Properties;

/**
 * Flink's Prometheus reporter, serving on one address: options {@code host} (default 127.0.0.1)
 * and {@code port} (a port or a range, as Flink's own). Flink 2.0's reporter has no address
 * option and listens on every interface. Loaded as a plugin, beside Flink's reporter jar
 * (attribution/deps.py), whose classes it extends.
 */
public class BoundPrometheusReporterFactory implements MetricReporterFactory {

    @Override
    public MetricReporter createMetricReporter(Properties properties) {
        return new BoundPrometheusReporter(
                properties.getProperty("host", "127.0.0.1"),
                new PortRange(properties.getProperty("port", "9249")));
    }

    /** The first free port of the range, on the host's address. */
    static final class BoundPrometheusReporter extends AbstractPrometheusReporter {

        private final HTTPServer server;

        BoundPrometheusReporter(String host, PortRange ports) {
            CollectorRegistry registry = registryOf(this);
            HTTPServer started = null;
            Iterator<Integer> candidates = ports.getPortsIterator();
            while (started == null && candidates.hasNext()) {
                int port = candidates.next();
                try {
                    started = new HTTPServer(new InetSocketAddress(host, port), registry);
                    log.info("Prometheus reporter serving on {}:{}", host, port);
                } catch (IOException inUse) {
                    log.debug("Prometheus reporter: {}:{} is in use", host, port, inUse);
                }
            }
            if (started == null) {
                throw new RuntimeException("No free port for the Prometheus reporter on " + host + ": " + ports);
            }
            server = started;
        }

        @Override
        public void close() {
            server.stop();
            super.close();
        }

        /** The registry the base class fills, which it keeps package-private. */
        private static CollectorRegistry registryOf(AbstractPrometheusReporter reporter) {
            try {
                Field field = AbstractPrometheusReporter.class.getDeclaredField("registry");
                field.setAccessible(true);
                return (CollectorRegistry) field.get(reporter);
            } catch (ReflectiveOperationException e) {
                throw new IllegalStateException("Flink's Prometheus reporter has no registry field", e);
            }
        }
    }
}

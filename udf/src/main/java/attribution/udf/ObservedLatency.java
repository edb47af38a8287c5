package attribution.udf;

import org.apache.flink.metrics.Histogram;
import org.apache.flink.runtime.metrics.DescriptiveStatisticsHistogram;
import org.apache.flink.table.annotation.DataTypeHint;
import org.apache.flink.table.data.TimestampData;
import org.apache.flink.table.functions.FunctionContext;
import org.apache.flink.table.functions.ScalarFunction;

import java.time.ZoneId;

/**
 * OBSERVED_LATENCY(event_time, 'zone', 'metric'): returns {@code event_time} unchanged and records
 * now minus {@code event_time} (read in time zone {@code zone}) in milliseconds in the calling
 * operator's histogram {@code attribution.<metric>}, exported by the Prometheus reporter as a
 * summary with quantiles over the last 10,000 records.
 *
 * <p>Non-deterministic, so that the planner neither folds nor duplicates it. It is applied to a
 * non-key column so that the sink's upsert key stays derivable.
 */
public class ObservedLatency extends ScalarFunction {

    private static final long serialVersionUID = 1L;
    private static final int WINDOW = 10_000;

    private transient FunctionContext context;
    private transient Histogram histogram;
    private transient ZoneId zone;

    @Override
    public void open(FunctionContext context) {
        this.context = context;
    }

    public @DataTypeHint(value = "TIMESTAMP(3)", bridgedTo = TimestampData.class) TimestampData eval(
            @DataTypeHint(value = "TIMESTAMP(3)", bridgedTo = TimestampData.class) TimestampData eventTime,
            String zoneId,
            String metric) {
        if (histogram == null) {
            histogram =
                    context.getMetricGroup()
                            .addGroup("attribution")
                            .histogram(metric, new DescriptiveStatisticsHistogram(WINDOW));
            zone = ZoneId.of(zoneId);
        }
        if (eventTime != null) {
            long at = eventTime.toLocalDateTime().atZone(zone).toInstant().toEpochMilli();
            histogram.update(System.currentTimeMillis() - at);
        }
        return eventTime;
    }

    @Override
    public boolean isDeterministic() {
        return false;
    }
}

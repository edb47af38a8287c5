package attribution.udf;

import org.apache.flink.metrics.Counter;
import org.apache.flink.metrics.MetricGroup;
import org.apache.flink.table.annotation.DataTypeHint;
import org.apache.flink.table.data.StringData;
import org.apache.flink.table.functions.FunctionContext;
import org.apache.flink.table.functions.ScalarFunction;

import java.util.HashMap;
import java.util.Map;

/**
 * COUNTED(value, 'metric', 'label', label_value): returns {@code value} unchanged and adds one to
 * the calling operator's counter {@code attribution.<label>.<metric>}, which the Prometheus
 * reporter exports as {@code flink_taskmanager_job_task_operator_attribution_<label>_<metric>} with
 * the label {@code <label>="<label_value>"}. COUNTED(value, 'metric', 'label') counts under the
 * value itself as the label's value (a reason, a kind), so the planner inlines value once, not twice.
 *
 * <p>Declared non-deterministic so that the planner neither folds it nor copies it into several
 * expressions: each evaluation is one event counted. Labels should be few (reasons, kinds), not ids.
 */
public class Counted extends ScalarFunction {

    private static final long serialVersionUID = 1L;

    private transient MetricGroup group;
    private transient Map<String, Counter> counters;

    @Override
    public void open(FunctionContext context) {
        group = context.getMetricGroup().addGroup("attribution");
        counters = new HashMap<>();
    }

    public @DataTypeHint(value = "STRING", bridgedTo = StringData.class) StringData eval(
            @DataTypeHint(value = "STRING", bridgedTo = StringData.class) StringData value,
            String metric,
            String label,
            String labelValue) {
        String key = metric + '\u0000' + label + '\u0000' + labelValue;
        Counter counter = counters.get(key);
        if (counter == null) {
            counter = group.addGroup(label, labelValue == null ? "" : labelValue).counter(metric);
            counters.put(key, counter);
        }
        counter.inc();
        return value;
    }

    public @DataTypeHint(value = "STRING", bridgedTo = StringData.class) StringData eval(
            @DataTypeHint(value = "STRING", bridgedTo = StringData.class) StringData value,
            String metric,
            String label) {
        return eval(value, metric, label, value == null ? null : value.toString());
    }

    @Override
    public boolean isDeterministic() {
        return false;
    }
}

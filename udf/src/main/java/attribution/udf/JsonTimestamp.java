package attribution.udf;

import org.apache.flink.table.annotation.DataTypeHint;
import org.apache.flink.table.data.StringData;
import org.apache.flink.table.data.TimestampData;
import org.apache.flink.table.functions.ScalarFunction;

/**
 * JSON_TIMESTAMP(payload, name): a top-level field "YYYY-MM-DD HH:MM:SS[.fff]" as TIMESTAMP(3);
 * NULL when it is missing, of another form, or not a real date and time. One parse per record
 * shared with JSON_FIELD (see {@link ParsedPayload}).
 */
public class JsonTimestamp extends ScalarFunction {

    private static final long serialVersionUID = 1L;

    public @DataTypeHint(value = "TIMESTAMP(3)", bridgedTo = TimestampData.class) TimestampData eval(
            @DataTypeHint(value = "STRING", bridgedTo = StringData.class) StringData payload,
            @DataTypeHint(value = "STRING", bridgedTo = StringData.class) StringData name) {
        if (payload == null || name == null) {
            return null;
        }
        return ParsedPayload.timestampOf(payload, name);
    }
}

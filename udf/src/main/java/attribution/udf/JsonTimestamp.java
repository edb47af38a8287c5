package attribution.udf;

import org.apache.flink.table.annotation.DataTypeHint;
import org.apache.flink.table.data.StringData;
import org.apache.flink.table.data.TimestampData;
import org.apache.flink.table.functions.ScalarFunction;

/**
 * JSON_TIMESTAMP(payload, name): of a record's raw bytes (UTF-8 JSON), a top-level field
 * "YYYY-MM-DD HH:MM:SS[.fff]" as TIMESTAMP(3); NULL when it is missing, of another form, or not
 * a real date and time, or when the payload is not a JSON object. Shares one parse per record
 * with JSON_FIELDS (see {@link ParsedPayload}).
 */
public class JsonTimestamp extends ScalarFunction {

    private static final long serialVersionUID = 1L;

    /** The last field name asked for, as text: calls pass the same literal every time. */
    private transient StringData lastName;
    private transient String lastNameText;

    public @DataTypeHint(value = "TIMESTAMP(3)", bridgedTo = TimestampData.class) TimestampData eval(
            @DataTypeHint("BYTES") byte[] payload,
            @DataTypeHint(value = "STRING", bridgedTo = StringData.class) StringData name) {
        if (payload == null || name == null) {
            return null;
        }
        if (name != lastName) {
            lastNameText = name.toString();
            lastName = name;
        }
        return ParsedPayload.of(payload).timestamp(lastNameText);
    }
}

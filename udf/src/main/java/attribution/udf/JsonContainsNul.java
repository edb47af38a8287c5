package attribution.udf;

import org.apache.flink.table.annotation.DataTypeHint;
import org.apache.flink.table.data.StringData;
import org.apache.flink.table.functions.ScalarFunction;

/**
 * JSON_CONTAINS_NUL(payload): whether a top-level field name or scalar value of the JSON object
 * holds the character U+0000 (escaped as \u0000: a raw NUL byte is not valid JSON at all), which
 * Postgres text cannot store. NULL when the payload is not a JSON object. Shares JSON_FIELD's
 * single parse per record (see {@link ParsedPayload}).
 */
public class JsonContainsNul extends ScalarFunction {

    private static final long serialVersionUID = 1L;

    public Boolean eval(@DataTypeHint(value = "STRING", bridgedTo = StringData.class) StringData payload) {
        if (payload == null || ParsedPayload.fieldsOf(payload) == null) {
            return null;
        }
        return ParsedPayload.containsNul(payload);
    }
}

package attribution.udf;

import org.apache.flink.table.annotation.DataTypeHint;
import org.apache.flink.table.data.StringData;
import org.apache.flink.table.functions.ScalarFunction;

/**
 * IS_JSON_OBJECT(payload): whether the payload is exactly one JSON object (no trailing text),
 * sharing JSON_FIELD's single parse per record. NULL for a NULL payload.
 */
public class IsJsonObject extends ScalarFunction {

    private static final long serialVersionUID = 1L;

    public Boolean eval(@DataTypeHint(value = "STRING", bridgedTo = StringData.class) StringData payload) {
        return payload == null ? null : ParsedPayload.fieldsOf(payload) != null;
    }
}

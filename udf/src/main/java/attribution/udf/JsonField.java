package attribution.udf;

import org.apache.flink.table.annotation.DataTypeHint;
import org.apache.flink.table.data.StringData;
import org.apache.flink.table.functions.ScalarFunction;

import java.util.Map;

/**
 * JSON_FIELD(payload, name): a top-level scalar field of a JSON object as text, as
 * JSON_VALUE(payload, '$.name') gives it, but parsing each payload once however many fields are
 * read (see {@link ParsedPayload}). NULL when the field is missing, JSON null, an array or an
 * object, or when the payload is not exactly one JSON object.
 */
public class JsonField extends ScalarFunction {

    private static final long serialVersionUID = 1L;

    public @DataTypeHint(value = "STRING", bridgedTo = StringData.class) StringData eval(
            @DataTypeHint(value = "STRING", bridgedTo = StringData.class) StringData payload,
            @DataTypeHint(value = "STRING", bridgedTo = StringData.class) StringData name) {
        if (payload == null || name == null) {
            return null;
        }
        Map<StringData, StringData> fields = ParsedPayload.fieldsOf(payload);
        return fields == null ? null : fields.get(name);
    }
}

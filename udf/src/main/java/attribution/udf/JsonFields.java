package attribution.udf;

import org.apache.flink.table.api.DataTypes;
import org.apache.flink.table.catalog.DataTypeFactory;
import org.apache.flink.table.data.GenericRowData;
import org.apache.flink.table.data.RowData;
import org.apache.flink.table.data.StringData;
import org.apache.flink.table.functions.TableFunction;
import org.apache.flink.table.types.DataType;
import org.apache.flink.table.types.inference.ArgumentTypeStrategy;
import org.apache.flink.table.types.inference.CallContext;
import org.apache.flink.table.types.inference.InputTypeStrategies;
import org.apache.flink.table.types.inference.TypeInference;

import java.util.ArrayList;
import java.util.List;
import java.util.Optional;

/**
 * JSON_FIELDS(payload, 'spec', ...): reads a record's raw bytes (UTF-8 JSON; BYTES, see
 * code/source/_kafka_raw.sql) once and returns exactly one row:
 *
 * <pre>
 *   payload_chars      INT      the payload's length in characters (NULL for a NULL payload)
 *   payload_is_object  BOOLEAN  whether it is exactly one JSON object, nothing after it
 *   payload_has_nul    BOOLEAN  whether a field name or scalar value holds U+0000
 *   spec, ...          one column per spec, named as the spec, from a top-level field ({@link FieldSpec}):
 *     'name'              STRING        the field as text, as JSON_VALUE gives it; NULL when missing,
 *                                       JSON null, an array or an object, or when the payload is not
 *                                       a JSON object
 *     'name:trimmed'      STRING        NULLIF(TRIM(text), '')
 *     'name:int'          INT           an integer (surrounding whitespace allowed), else NULL
 *     'name:decimal(p,s)' DECIMAL(p, s) a number rounded half up to s places; NULL when it is not
 *                                       a number or does not fit
 *     'name:timestamp'    TIMESTAMP(3)  JSON_TIMESTAMP(payload, 'name')
 * </pre>
 *
 * <p>Why a table function: the planner copies a scalar function call into every expression that
 * uses its result, so field-by-field JSON functions ran dozens of times per record and made the
 * generated code, and its compilation, large. A row from LATERAL TABLE is computed once and read
 * as plain columns. For the same reason the typed forms are columns here: a TRY_CAST or TRIM in the
 * view is copied into the projection and every check that reads it. It always returns a row, so
 * that the lateral join never drops a record.
 */
public class JsonFields extends TableFunction<RowData> {

    private static final long serialVersionUID = 1L;
    private static final int PAYLOAD_COLUMNS = 3;

    /**
     * The fields of this call, from its literal arguments (the same for every record; the planner
     * creates an instance per call, so two calls with other specs never share one).
     */
    private transient FieldSpec[] fields;

    public void eval(byte[] payload, StringData... specs) {
        if (fields == null) {
            fields = new FieldSpec[specs.length];
            for (int i = 0; i < fields.length; i++) {
                fields[i] = FieldSpec.parse(specs[i].toString());
            }
        }
        GenericRowData row = new GenericRowData(PAYLOAD_COLUMNS + fields.length);
        if (payload != null) {
            ParsedPayload parsed = ParsedPayload.of(payload);
            row.setField(0, parsed.chars());
            row.setField(1, parsed.isObject());
            row.setField(2, parsed.containsNul());
            for (int i = 0; i < fields.length; i++) {
                row.setField(PAYLOAD_COLUMNS + i, fields[i].read(parsed));
            }
        }
        collect(row);
    }

    @Override
    public TypeInference getTypeInference(DataTypeFactory typeFactory) {
        // Specs are checked to be literals by the output strategy, which reads them.
        ArgumentTypeStrategy bytes = InputTypeStrategies.explicit(DataTypes.BYTES());
        ArgumentTypeStrategy text = InputTypeStrategies.explicit(FieldSpec.TEXT);
        return TypeInference.newBuilder()
                .inputTypeStrategy(InputTypeStrategies.varyingSequence(bytes, text))
                .outputTypeStrategy(JsonFields::outputType)
                .build();
    }

    private static Optional<DataType> outputType(CallContext call) {
        List<DataTypes.Field> columns = new ArrayList<>();
        columns.add(DataTypes.FIELD("payload_chars", DataTypes.INT()));
        columns.add(DataTypes.FIELD("payload_is_object", DataTypes.BOOLEAN()));
        columns.add(DataTypes.FIELD("payload_has_nul", DataTypes.BOOLEAN()));
        for (int i = 1; i < call.getArgumentDataTypes().size(); i++) {
            Optional<String> spec = call.getArgumentValue(i, String.class);
            if (spec.isEmpty()) {
                return call.fail(true, "JSON_FIELDS: field specs must be string literals");
            }
            try {
                columns.add(DataTypes.FIELD(spec.get(), FieldSpec.parse(spec.get()).type()));
            } catch (IllegalArgumentException e) {
                return call.fail(true, e.getMessage());
            }
        }
        return Optional.of(DataTypes.ROW(columns).bridgedTo(RowData.class));
    }
}

package attribution.udf;

import org.apache.flink.table.api.DataTypes;
import org.apache.flink.table.data.DecimalData;
import org.apache.flink.table.data.StringData;
import org.apache.flink.table.data.TimestampData;
import org.apache.flink.table.data.binary.BinaryStringData;
import org.apache.flink.table.data.binary.BinaryStringDataUtil;
import org.apache.flink.table.types.DataType;

import java.math.BigDecimal;
import java.math.RoundingMode;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * One column of JSON_FIELDS: a top-level field name and the form it is read in ('name' or
 * 'name:form'). Numbers are read strictly, unlike Flink's TRY_CAST, which reads 'x' as DECIMAL
 * 0.00, '1.5' as INT 1, and lets '99999999.995' round to a DECIMAL(10, 2) that the sink's column
 * cannot hold (every write of it would fail).
 */
final class FieldSpec {

    enum Form { TEXT, TRIMMED, INT, DECIMAL, TIMESTAMP }

    private static final Pattern SPEC =
            Pattern.compile("([^:]+)(?::(trimmed|int|timestamp|decimal\\((\\d+),\\s*(\\d+)\\)))?");
    private static final BinaryStringData SPACE = BinaryStringData.fromString(" ");
    /** The type of a field's text, and of JSON_FIELDS' payload argument. */
    static final DataType TEXT = DataTypes.STRING().bridgedTo(StringData.class);

    private final String name;
    private final Form form;
    private final int precision;
    private final int scale;

    private FieldSpec(String name, Form form, int precision, int scale) {
        this.name = name;
        this.form = form;
        this.precision = precision;
        this.scale = scale;
    }

    static FieldSpec parse(String spec) {
        Matcher m = SPEC.matcher(spec);
        if (!m.matches()) {
            throw new IllegalArgumentException("JSON_FIELDS: '" + spec + "' is not 'name' or "
                    + "'name:trimmed|int|timestamp|decimal(p,s)'");
        }
        String form = m.group(2);
        if (form == null) {
            return new FieldSpec(m.group(1), Form.TEXT, 0, 0);
        }
        if (form.startsWith("decimal")) {
            int precision = Integer.parseInt(m.group(3));
            int scale = Integer.parseInt(m.group(4));
            if (precision < 1 || precision > 38 || scale > precision) {
                throw new IllegalArgumentException("JSON_FIELDS: '" + spec + "': no such DECIMAL");
            }
            return new FieldSpec(m.group(1), Form.DECIMAL, precision, scale);
        }
        return new FieldSpec(m.group(1), Form.valueOf(form.toUpperCase()), 0, 0);
    }

    DataType type() {
        switch (form) {
            case INT:
                return DataTypes.INT();
            case DECIMAL:
                return DataTypes.DECIMAL(precision, scale).bridgedTo(DecimalData.class);
            case TIMESTAMP:
                return DataTypes.TIMESTAMP(3).bridgedTo(TimestampData.class);
            default:
                return TEXT;
        }
    }

    /** This column of a parsed payload, NULL when the field is missing or not of this form. */
    Object read(ParsedPayload parsed) {
        if (form == Form.TIMESTAMP) {
            return parsed.timestamp(name);
        }
        BinaryStringData text = (BinaryStringData) parsed.field(name);
        if (text == null || form == Form.TEXT) {
            return text;
        }
        switch (form) {
            case TRIMMED: { // NULLIF(TRIM(text), '')
                BinaryStringData trimmed = BinaryStringDataUtil.trim(text, true, true, SPACE);
                return trimmed.numChars() == 0 ? null : trimmed;
            }
            case INT:
                try {
                    return Integer.parseInt(text.toString().trim());
                } catch (NumberFormatException e) {
                    return null;
                }
            default:
                return decimal(text.toString().trim());
        }
    }

    /** A number rounded half up to the scale, or NULL when it is not one or does not fit. */
    private DecimalData decimal(String text) {
        try {
            BigDecimal number = new BigDecimal(text);
            int magnitude = number.precision() - number.scale(); // |number| < 10^magnitude
            if (magnitude > precision - scale) {
                return null;
            }
            if (magnitude < -scale) {
                number = BigDecimal.ZERO; // rounds to 0; spares setScale the division of 1e-999999999
            }
            return DecimalData.fromBigDecimal(number.setScale(scale, RoundingMode.HALF_UP), precision, scale);
        } catch (NumberFormatException e) {
            return null;
        }
    }
}

package attribution.udf;

import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.databind.DeserializationFeature;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.databind.JsonNode;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.databind.ObjectMapper;
import org.apache.flink.table.data.StringData;
import org.apache.flink.table.data.TimestampData;

import java.io.IOException;
import java.time.DateTimeException;
import java.time.LocalDateTime;
import java.util.Arrays;
import java.util.HashMap;
import java.util.Iterator;
import java.util.Map;

/**
 * The top-level scalar fields of the last payload parsed on this thread.
 *
 * <p>Why: JSON_VALUE parses the whole document on every call, about twenty calls per event in the
 * validation rules, which made parsing the job's bottleneck. The planner inlines function calls
 * into every expression that uses them, so a "parse once into a column" view still parses per
 * use. Remembering the last parse per thread makes every further call for the same record a byte
 * comparison and a hash lookup. Parsing is deterministic, so an equal payload gives the same fields.
 */
final class ParsedPayload {

    private static final ObjectMapper MAPPER =
            new ObjectMapper()
                    .enable(DeserializationFeature.FAIL_ON_TRAILING_TOKENS)
                    .enable(DeserializationFeature.USE_BIG_DECIMAL_FOR_FLOATS);

    private static final ThreadLocal<ParsedPayload> LAST = ThreadLocal.withInitial(ParsedPayload::new);

    /** Stands for "not a timestamp" in the cache, where a missing key means "not parsed yet". */
    private static final TimestampData INVALID = TimestampData.fromEpochMillis(Long.MIN_VALUE);

    private byte[] payload;
    /** NULL when the payload is not exactly one JSON object. */
    private Map<StringData, StringData> fields;
    /** Whether a field name or text value holds U+0000, which Postgres text cannot store. */
    private boolean containsNul;
    /** Fields already read as timestamps: java.time parsing is costly enough to do once. */
    private final Map<StringData, TimestampData> timestamps = new HashMap<>();

    private ParsedPayload() {}

    private static ParsedPayload of(StringData payload) {
        byte[] bytes = payload.toBytes();
        ParsedPayload last = LAST.get();
        if (last.payload == null || !Arrays.equals(last.payload, bytes)) {
            last.containsNul = false;
            last.fields = last.parse(bytes);
            last.timestamps.clear();
            // toBytes() may return the record's own buffer, which is reused for the next record.
            last.payload = bytes.clone();
        }
        return last;
    }

    /** The fields of {@code payload}, or NULL when it is not exactly one JSON object. */
    static Map<StringData, StringData> fieldsOf(StringData payload) {
        return of(payload).fields;
    }

    /** Whether a field name or scalar value of the payload holds U+0000 (written as \\u0000). */
    static boolean containsNul(StringData payload) {
        return of(payload).containsNul;
    }

    /** Field {@code name} read as a timestamp (see {@link #parseTimestamp}), or NULL. */
    static TimestampData timestampOf(StringData payload, StringData name) {
        ParsedPayload parsed = of(payload);
        if (parsed.fields == null) {
            return null;
        }
        TimestampData value = parsed.timestamps.get(name);
        if (value == null) {
            StringData text = parsed.fields.get(name);
            value = text == null ? null : parseTimestamp(text.toString());
            parsed.timestamps.put(name, value == null ? INVALID : value);
        }
        return value == INVALID ? null : value;
    }

    /**
     * "YYYY-MM-DD HH:MM:SS" with an optional fraction of 1 to 9 digits, kept to the millisecond;
     * NULL for anything else, or a date or time that does not exist. The format is fixed, so it is
     * matched by hand: Flink's CAST goes through a DateTimeFormatter with optional sections, which
     * the profile showed costing more than the JSON parse.
     */
    static TimestampData parseTimestamp(String s) {
        int n = s.length();
        if (n < 19 || n == 20 || n > 29 || s.charAt(4) != '-' || s.charAt(7) != '-'
                || s.charAt(10) != ' ' || s.charAt(13) != ':' || s.charAt(16) != ':'
                || (n > 19 && s.charAt(19) != '.')) {
            return null;
        }
        int year = digits(s, 0, 4);
        int month = digits(s, 5, 7);
        int day = digits(s, 8, 10);
        int hour = digits(s, 11, 13);
        int minute = digits(s, 14, 16);
        int second = digits(s, 17, 19);
        int nanos = 0;
        if (n > 19) {
            int fraction = digits(s, 20, n);
            if (fraction < 0) {
                return null;
            }
            nanos = fraction;
            for (int i = n - 20; i < 9; i++) {
                nanos *= 10;
            }
            nanos -= nanos % 1_000_000;
        }
        if (year < 0 || month < 0 || day < 0 || hour < 0 || minute < 0 || second < 0) {
            return null;
        }
        try {
            return TimestampData.fromLocalDateTime(LocalDateTime.of(year, month, day, hour, minute, second, nanos));
        } catch (DateTimeException e) {
            return null;
        }
    }

    /** The decimal number in s[from, to), or -1 when a character is not a digit. */
    private static int digits(String s, int from, int to) {
        int value = 0;
        for (int i = from; i < to; i++) {
            char c = s.charAt(i);
            if (c < '0' || c > '9') {
                return -1;
            }
            value = value * 10 + (c - '0');
        }
        return value;
    }

    private Map<StringData, StringData> parse(byte[] payload) {
        final JsonNode root;
        try {
            root = MAPPER.readTree(payload);
        } catch (IOException e) {
            return null;
        }
        if (root == null || !root.isObject()) {
            return null;
        }
        Map<StringData, StringData> fields = new HashMap<>(2 * root.size());
        Iterator<Map.Entry<String, JsonNode>> it = root.fields();
        while (it.hasNext()) {
            Map.Entry<String, JsonNode> field = it.next();
            JsonNode value = field.getValue();
            // As JSON_VALUE: only scalars have a value; null, arrays and objects do not.
            if (value.isValueNode() && !value.isNull()) {
                String text = value.asText();
                containsNul |= text.indexOf('\0') >= 0 || field.getKey().indexOf('\0') >= 0;
                fields.put(StringData.fromString(field.getKey()), StringData.fromString(text));
            }
        }
        return fields;
    }
}

package attribution.udf;

import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.core.JsonFactory;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.core.JsonParser;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.core.JsonToken;
import org.apache.flink.table.data.StringData;
import org.apache.flink.table.data.TimestampData;

import java.io.IOException;
import java.time.DateTimeException;
import java.time.LocalDateTime;
import java.util.Arrays;
import java.util.HashMap;
import java.util.Map;

/**
 * The last payload read on this thread: its top-level scalar fields, whether it is one JSON
 * object, whether it holds U+0000, and its length in characters.
 *
 * <p>Why a per-thread memo: a record's payload is read by several calls (the source's watermark,
 * JSON_FIELDS, JSON_TIMESTAMP in the validation rules), and parsing is the costly part. The same
 * payload array reaches every call of one record (the Kafka source gives each record its own, and
 * nothing writes to it), so the check is an identity comparison; an equal payload in another
 * array (a copy) is recognised by its bytes. Parsing is deterministic, so an equal payload gives
 * the same fields.
 */
final class ParsedPayload {

    private static final JsonFactory JSON = new JsonFactory();

    private static final ThreadLocal<ParsedPayload> LAST = ThreadLocal.withInitial(ParsedPayload::new);

    /** Stands for "not a timestamp" in the memo, where a missing key means "not read yet". */
    private static final TimestampData INVALID = TimestampData.fromEpochMillis(Long.MIN_VALUE);

    /** The payload these fields were read from. */
    private byte[] source;
    /** NULL when the payload is not exactly one JSON object. */
    private Map<String, StringData> fields;
    private boolean containsNul;
    private int chars;
    private final Map<String, TimestampData> timestamps = new HashMap<>();

    private ParsedPayload() {}

    /** The parsed form of {@code payload} (not NULL). */
    static ParsedPayload of(byte[] payload) {
        ParsedPayload last = LAST.get();
        if (payload != last.source) {
            if (last.source == null || !Arrays.equals(last.source, payload)) {
                last.read(payload);
            }
            last.source = payload;
        }
        return last;
    }

    /** Whether the payload is exactly one JSON object (nothing after it). */
    boolean isObject() {
        return fields != null;
    }

    /** Whether a field name or scalar value holds U+0000 (written as \\u0000 in JSON). */
    boolean containsNul() {
        return containsNul;
    }

    /** The payload's length in characters (code points), as CHAR_LENGTH counts them. */
    int chars() {
        return chars;
    }

    /**
     * A top-level field as text, as JSON_VALUE gives it; NULL when it is missing, JSON null, an
     * array or an object, or when the payload is not a JSON object.
     */
    StringData field(String name) {
        return fields == null ? null : fields.get(name);
    }

    /** A field read as a timestamp (see {@link #parseTimestamp}), or NULL. */
    TimestampData timestamp(String name) {
        if (fields == null) {
            return null;
        }
        TimestampData value = timestamps.get(name);
        if (value == null) {
            StringData text = fields.get(name);
            value = text == null ? null : parseTimestamp(text.toString());
            timestamps.put(name, value == null ? INVALID : value);
        }
        return value == INVALID ? null : value;
    }

    private void read(byte[] payload) {
        chars = countChars(payload);
        containsNul = false;
        timestamps.clear();
        fields = parseObject(payload);
    }

    /** UTF-8 characters: every byte that does not continue a multi-byte sequence starts one. */
    private static int countChars(byte[] utf8) {
        int n = 0;
        for (byte b : utf8) {
            if ((b & 0xC0) != 0x80) {
                n++;
            }
        }
        return n;
    }

    /** The top-level scalar fields, or NULL when the text is not exactly one JSON object. */
    private Map<String, StringData> parseObject(byte[] payload) {
        Map<String, StringData> result = new HashMap<>();
        try (JsonParser parser = JSON.createParser(payload)) {
            if (parser.nextToken() != JsonToken.START_OBJECT) {
                return null;
            }
            for (JsonToken token = parser.nextToken(); token != JsonToken.END_OBJECT; token = parser.nextToken()) {
                String name = parser.currentName(); // token is FIELD_NAME: the parser rejects anything else
                JsonToken value = parser.nextToken();
                if (value == JsonToken.START_OBJECT || value == JsonToken.START_ARRAY) {
                    parser.skipChildren(); // as JSON_VALUE: only scalars have a value
                    result.remove(name);
                } else if (value == JsonToken.VALUE_NULL) {
                    result.remove(name);
                } else {
                    String text = parser.getText();
                    containsNul |= text.indexOf('\0') >= 0 || name.indexOf('\0') >= 0;
                    result.put(name, StringData.fromString(text));
                }
            }
            // Exactly one object: anything after it but whitespace makes the payload something else.
            return parser.nextToken() == null ? result : null;
        } catch (IOException e) {
            return null;
        }
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
}

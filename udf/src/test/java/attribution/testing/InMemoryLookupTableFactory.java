package attribution.testing;

import org.apache.flink.configuration.ConfigOption;
import org.apache.flink.configuration.ConfigOptions;
import org.apache.flink.table.connector.source.DynamicTableSource;
import org.apache.flink.table.connector.source.LookupTableSource;
import org.apache.flink.table.connector.source.lookup.LookupFunctionProvider;
import org.apache.flink.table.data.GenericRowData;
import org.apache.flink.table.data.RowData;
import org.apache.flink.table.data.StringData;
import org.apache.flink.table.factories.DynamicTableSourceFactory;
import org.apache.flink.table.factories.FactoryUtil;
import org.apache.flink.table.functions.FunctionContext;
import org.apache.flink.table.functions.LookupFunction;
import org.apache.flink.table.types.logical.LogicalType;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collection;
import java.util.Collections;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Tests only (tests/unit/test_rule.py): a lookup table held in memory, so that the job's
 * {@code LEFT JOIN users FOR SYSTEM_TIME AS OF c.proc_time} runs unchanged without Postgres. A
 * processing-time lookup join needs a LookupTableSource; a bounded scan table in its place would
 * be a regular join, which turns the rowtime into a plain timestamp and the interval join after
 * it into a regular join.
 *
 * <pre>
 * CREATE TABLE users (id INT, username STRING) WITH ('connector' = 'in-memory-lookup', 'path' = '/tmp/users.tsv')
 * </pre>
 *
 * The file has one row per line, the columns in the table's order separated by tabs, \N for NULL.
 * Columns may be INT, BIGINT or STRING.
 */
public class InMemoryLookupTableFactory implements DynamicTableSourceFactory {

    public static final ConfigOption<String> PATH =
            ConfigOptions.key("path").stringType().noDefaultValue().withDescription("tab-separated rows");

    @Override
    public String factoryIdentifier() {
        return "in-memory-lookup";
    }

    @Override
    public Set<ConfigOption<?>> requiredOptions() {
        return Collections.singleton(PATH);
    }

    @Override
    public Set<ConfigOption<?>> optionalOptions() {
        return new HashSet<>();
    }

    @Override
    public DynamicTableSource createDynamicTableSource(Context context) {
        FactoryUtil.TableFactoryHelper helper = FactoryUtil.createTableFactoryHelper(this, context);
        helper.validate();
        List<LogicalType> types = context.getPhysicalRowDataType().getLogicalType().getChildren();
        return new Source(helper.getOptions().get(PATH), new ArrayList<>(types));
    }

    public static final class Source implements LookupTableSource {
        private final String path;
        private final ArrayList<LogicalType> types;

        public Source(String path, ArrayList<LogicalType> types) {
            this.path = path;
            this.types = types;
        }

        @Override
        public LookupRuntimeProvider getLookupRuntimeProvider(LookupContext context) {
            int[] keys = Arrays.stream(context.getKeys()).mapToInt(k -> k[0]).toArray();
            return LookupFunctionProvider.of(new Lookup(path, types, keys));
        }

        @Override
        public DynamicTableSource copy() {
            return new Source(path, types);
        }

        @Override
        public String asSummaryString() {
            return "in-memory-lookup";
        }
    }

    public static final class Lookup extends LookupFunction {
        private static final long serialVersionUID = 1L;

        private final String path;
        private final ArrayList<LogicalType> types;
        private final int[] keys;
        private transient Map<List<Object>, List<RowData>> rowsByKey;

        public Lookup(String path, ArrayList<LogicalType> types, int[] keys) {
            this.path = path;
            this.types = types;
            this.keys = keys;
        }

        @Override
        public void open(FunctionContext context) throws IOException {
            rowsByKey = new HashMap<>();
            for (String line : Files.readAllLines(Paths.get(path), StandardCharsets.UTF_8)) {
                if (line.isEmpty()) {
                    continue;
                }
                String[] cells = line.split("\t", -1);
                GenericRowData row = new GenericRowData(types.size());
                for (int i = 0; i < types.size(); i++) {
                    row.setField(i, convert(cells[i], types.get(i)));
                }
                List<Object> key = new ArrayList<>();
                for (int k : keys) {
                    key.add(row.getField(k));
                }
                rowsByKey.computeIfAbsent(key, unused -> new ArrayList<>()).add(row);
            }
        }

        @Override
        public Collection<RowData> lookup(RowData keyRow) {
            List<Object> key = new ArrayList<>();
            for (int i = 0; i < keys.length; i++) {
                key.add(keyRow.isNullAt(i) ? null : field(keyRow, i, types.get(keys[i])));
            }
            return rowsByKey.getOrDefault(key, Collections.emptyList());
        }

        private static Object convert(String cell, LogicalType type) {
            if (cell.equals("\\N")) {
                return null;
            }
            switch (type.getTypeRoot()) {
                case INTEGER:
                    return Integer.valueOf(cell);
                case BIGINT:
                    return Long.valueOf(cell);
                case CHAR:
                case VARCHAR:
                    return StringData.fromString(cell);
                default:
                    throw new IllegalArgumentException("in-memory-lookup: unsupported type " + type);
            }
        }

        private static Object field(RowData row, int pos, LogicalType type) {
            switch (type.getTypeRoot()) {
                case INTEGER:
                    return row.getInt(pos);
                case BIGINT:
                    return row.getLong(pos);
                default:
                    // BinaryStringData: equal to the file's StringData when the text is equal.
                    return StringData.fromString(row.getString(pos).toString());
            }
        }
    }
}

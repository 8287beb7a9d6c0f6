/* The strict TOML reader: documents taken from the TOML 1.0 specification's
 * examples (valid ones must parse to the stated values, the ones the spec marks
 * INVALID must fail), plus the error positions and messages dsock relies on. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "common/toml.h"

static toml_value_t *ok(const char *doc) {
    toml_error_t err;
    toml_value_t *v = toml_parse(doc, strlen(doc), &err);
    cr_assert(v, "expected to parse, got %d:%d: %s\n--- document:\n%s", err.line, err.col,
              err.msg, doc);
    return v;
}

/* Expects a failure on line (0: any) whose message contains needle. */
static void bad(const char *doc, int line, const char *needle) {
    toml_error_t err;
    toml_value_t *v = toml_parse(doc, strlen(doc), &err);
    cr_assert_null(v, "expected an error for:\n%s", doc);
    if (line) cr_expect_eq(err.line, line, "line %d, want %d (%s) for:\n%s", err.line, line,
                           err.msg, doc);
    if (needle) cr_expect(strstr(err.msg, needle), "message \"%s\" lacks \"%s\" for:\n%s",
                          err.msg, needle, doc);
}

/* Follows a dotted path of plain keys ("a.b.c"). */
static const toml_value_t *at(const toml_value_t *root, const char *path) {
    char buf[256];
    snprintf(buf, sizeof buf, "%s", path);
    const toml_value_t *v = root;
    for (char *save, *k = strtok_r(buf, ".", &save); k; k = strtok_r(NULL, ".", &save)) {
        v = toml_get(v, k);
        cr_assert(v, "no %s (at %s)", path, k);
    }
    return v;
}

static void expect_str(const toml_value_t *root, const char *path, const char *want) {
    const toml_value_t *v = at(root, path);
    cr_assert_eq(v->type, TOML_STRING, "%s is a %s", path, toml_type_name(v->type));
    cr_expect_eq(v->u.str.len, strlen(want), "%s: length %zu, want %zu (\"%s\")", path,
                 v->u.str.len, strlen(want), v->u.str.ptr);
    cr_expect_str_eq(v->u.str.ptr, want, "%s", path);
}

static void expect_int(const toml_value_t *root, const char *path, int64_t want) {
    const toml_value_t *v = at(root, path);
    cr_assert_eq(v->type, TOML_INTEGER, "%s is a %s", path, toml_type_name(v->type));
    cr_expect_eq(v->u.integer, want, "%s = %lld, want %lld", path, (long long)v->u.integer,
                 (long long)want);
}

static void expect_float(const toml_value_t *root, const char *path, double want) {
    const toml_value_t *v = at(root, path);
    cr_assert_eq(v->type, TOML_FLOAT, "%s is a %s", path, toml_type_name(v->type));
    cr_expect(fabs(v->u.flt - want) <= fabs(want) * 1e-12, "%s = %g, want %g", path, v->u.flt,
              want);
}

/* ---- spec: comments, key/value pairs, keys ---------------------------------- */

Test(toml_spec, comment) {
    toml_value_t *r = ok("# This is a full-line comment\n"
                         "key = \"value\"  # This is a comment at the end of a line\n"
                         "another = \"# This is not a comment\"\n");
    expect_str(r, "key", "value");
    expect_str(r, "another", "# This is not a comment");
    toml_free(r);
}

Test(toml_spec, keyvalue_needs_value) {
    bad("key = # INVALID\n", 1, "expected a value");
    bad("first = \"Tom\" last = \"Preston-Werner\" # INVALID\n", 1, "end of the line");
}

Test(toml_spec, bare_and_quoted_keys) {
    toml_value_t *r = ok("key = \"value\"\nbare_key = \"value\"\nbare-key = \"value\"\n"
                         "1234 = \"value\"\n"
                         "\"127.0.0.1\" = \"value\"\n"
                         "\"character encoding\" = \"value\"\n"
                         "\"ʎǝʞ\" = \"value\"\n"
                         "'key2' = \"value\"\n"
                         "'quoted \"value\"' = \"value\"\n");
    expect_str(r, "bare-key", "value");
    expect_str(r, "1234", "value");
    cr_expect(toml_get(r, "127.0.0.1"));
    cr_expect(toml_get(r, "character encoding"));
    cr_expect(toml_get(r, "ʎǝʞ"));
    cr_expect(toml_get(r, "quoted \"value\""));
    cr_expect_eq(r->u.table.len, 9);
    toml_free(r);
}

Test(toml_spec, empty_keys) {
    bad("= \"no key name\"  # INVALID\n", 1, "expected a key");
    toml_value_t *r = ok("\"\" = \"blank\"     # VALID but discouraged\n");
    cr_expect(toml_get(r, ""));
    toml_free(r);
    r = ok("'' = 'blank'     # VALID but discouraged\n");
    toml_free(r);
}

Test(toml_spec, dotted_keys) {
    toml_value_t *r = ok("name = \"Orange\"\n"
                         "physical.color = \"orange\"\n"
                         "physical.shape = \"round\"\n"
                         "site.\"google.com\" = true\n");
    expect_str(r, "physical.color", "orange");
    expect_str(r, "physical.shape", "round");
    const toml_value_t *g = toml_get(toml_get(r, "site"), "google.com");
    cr_assert(g && g->type == TOML_BOOLEAN && g->u.boolean);
    toml_free(r);
    r = ok("fruit.name = \"banana\"     # this is best practice\n"
           "fruit. color = \"yellow\"    # same as fruit.color\n"
           "fruit . flavor = \"banana\"   # same as fruit.flavor\n");
    expect_str(r, "fruit.color", "yellow");
    expect_str(r, "fruit.flavor", "banana");
    toml_free(r);
}

Test(toml_spec, duplicate_keys) {
    bad("name = \"Tom\"\nname = \"Pradyun\"\n", 2, "duplicate key name");
    bad("spelling = \"favorite\"\n\"spelling\" = \"favourite\"\n", 2, "duplicate key");
    bad("fruit.apple = 1\nfruit.apple.smooth = true\n", 2, "already an integer");
}

Test(toml_spec, dotted_keys_extend_tables) {
    toml_value_t *r = ok("fruit.apple.smooth = true\nfruit.orange = 2\n");
    expect_int(r, "fruit.orange", 2);
    toml_free(r);
    r = ok("apple.type = \"fruit\"\norange.type = \"fruit\"\n"
           "apple.skin = \"thin\"\norange.skin = \"thick\"\n"
           "apple.color = \"red\"\norange.color = \"orange\"\n");
    expect_str(r, "orange.color", "orange");
    toml_free(r);
    r = ok("3.14159 = \"pi\"\n");
    expect_str(r, "3.14159", "pi");
    toml_free(r);
}

/* ---- spec: strings ------------------------------------------------------------ */

Test(toml_spec, basic_string) {
    toml_value_t *r = ok("str = \"I'm a string. \\\"You can quote me\\\". Name\\tJos\\u00E9\\n"
                         "Location\\tSF.\"\n");
    expect_str(r, "str", "I'm a string. \"You can quote me\". Name\tJos\xC3\xA9\nLocation\tSF.");
    toml_free(r);
    r = ok("s = \"\\b\\t\\n\\f\\r\\\"\\\\\\U0001F600\"\n");
    expect_str(r, "s", "\b\t\n\f\r\"\\\xF0\x9F\x98\x80");
    toml_free(r);
}

Test(toml_spec, invalid_escapes) {
    bad("s = \"bad \\q escape\"\n", 1, "invalid escape \\q");
    bad("s = \"\\x41\"\n", 1, "invalid escape \\x");
    bad("s = \"\\uD800\"\n", 1, "not a Unicode scalar value");
    bad("s = \"\\U00110000\"\n", 1, "not a Unicode scalar value");
    bad("s = \"\\u12\"\n", 1, "hex digits");
}

Test(toml_spec, multiline_basic) {
    toml_value_t *r = ok("str1 = \"\"\"\nRoses are red\nViolets are blue\"\"\"\n");
    expect_str(r, "str1", "Roses are red\nViolets are blue");
    toml_free(r);
    r = ok("str1 = \"The quick brown fox jumps over the lazy dog.\"\n"
           "str2 = \"\"\"\nThe quick brown \\\n\n\n  fox jumps over \\\n    the lazy dog.\"\"\"\n"
           "str3 = \"\"\"\\\n       The quick brown \\\n       fox jumps over \\\n"
           "       the lazy dog.\\\n       \"\"\"\n");
    expect_str(r, "str2", "The quick brown fox jumps over the lazy dog.");
    expect_str(r, "str3", "The quick brown fox jumps over the lazy dog.");
    toml_free(r);
    r = ok("str4 = \"\"\"Here are two quotation marks: \"\". Simple enough.\"\"\"\n"
           "str5 = \"\"\"Here are three quotation marks: \"\"\\\".\"\"\"\n"
           "str6 = \"\"\"Here are fifteen quotation marks: \"\"\\\"\"\"\\\"\"\"\\\"\"\"\\\"\"\"\\\".\"\"\"\n"
           "str7 = \"\"\"\"This,\" she said, \"is just a pointless statement.\"\"\"\"\n");
    expect_str(r, "str4", "Here are two quotation marks: \"\". Simple enough.");
    expect_str(r, "str5", "Here are three quotation marks: \"\"\".");
    expect_str(r, "str6", "Here are fifteen quotation marks: \"\"\"\"\"\"\"\"\"\"\"\"\"\"\".");
    expect_str(r, "str7", "\"This,\" she said, \"is just a pointless statement.\"");
    toml_free(r);
    bad("str5 = \"\"\"Here are three quotation marks: \"\"\".\"\"\"  # INVALID\n", 1, NULL);
}

Test(toml_spec, literal_strings) {
    toml_value_t *r = ok("winpath  = 'C:\\Users\\nodejs\\templates'\n"
                         "winpath2 = '\\\\ServerX\\admin$\\system32\\'\n"
                         "quoted   = 'Tom \"Dubs\" Preston-Werner'\n"
                         "regex    = '<\\i\\c*\\s*>'\n");
    expect_str(r, "winpath", "C:\\Users\\nodejs\\templates");
    expect_str(r, "winpath2", "\\\\ServerX\\admin$\\system32\\");
    expect_str(r, "quoted", "Tom \"Dubs\" Preston-Werner");
    expect_str(r, "regex", "<\\i\\c*\\s*>");
    toml_free(r);
    r = ok("regex2 = '''I [dw]on't need \\d{2} apples'''\n"
           "lines  = '''\nThe first newline is\ntrimmed in raw strings.\n"
           "   All other whitespace\n   is preserved.\n'''\n");
    expect_str(r, "regex2", "I [dw]on't need \\d{2} apples");
    expect_str(r, "lines", "The first newline is\ntrimmed in raw strings.\n   All other "
                           "whitespace\n   is preserved.\n");
    toml_free(r);
    r = ok("quot15 = '''Here are fifteen quotation marks: \"\"\"\"\"\"\"\"\"\"\"\"\"\"\"'''\n"
           "apos15 = \"Here are fifteen apostrophes: '''''''''''''''\"\n"
           "str = ''''That,' she said, 'is still pointless.''''\n");
    expect_str(r, "quot15", "Here are fifteen quotation marks: \"\"\"\"\"\"\"\"\"\"\"\"\"\"\"");
    expect_str(r, "str", "'That,' she said, 'is still pointless.'");
    toml_free(r);
    bad("apos15 = '''Here are fifteen apostrophes: ''''''''''''''''''  # INVALID\n", 1, NULL);
}

Test(toml_strict, strings) {
    bad("s = \"no end\n", 1, "unterminated string");
    bad("s = 'no end\n", 1, "unterminated string");
    bad("s = \"\"\"never\nclosed\n", 3, "unterminated multi-line string");
    bad("s = \"tab\tok but \x01 is not\"\n", 1, "must be written as an escape");
    bad("s = \"\"\"a\\ b\"\"\"\n", 1, "invalid escape");
    bad("s = \"\"\"\na\x7f\n\"\"\"\n", 2, "escape");
    bad("k = 'a'\n# comment with \x02 control\n", 2, "not allowed in a comment");
    bad("k = \"\xff\"\n", 1, "invalid UTF-8");
    bad("k = 1\r\nj = 2\r", 2, NULL);
    bad("\"\"\"key\"\"\" = 1\n", 1, "multi-line");
}

/* ---- spec: numbers and booleans ------------------------------------------------ */

Test(toml_spec, integers) {
    toml_value_t *r = ok("int1 = +99\nint2 = 42\nint3 = 0\nint4 = -17\n"
                         "int5 = 1_000\nint6 = 5_349_221\nint7 = 53_49_221\nint8 = 1_2_3_4_5\n"
                         "hex1 = 0xDEADBEEF\nhex2 = 0xdeadbeef\nhex3 = 0xdead_beef\n"
                         "oct1 = 0o01234567\noct2 = 0o755\nbin1 = 0b11010110\n"
                         "max = 9223372036854775807\nmin = -9223372036854775808\n"
                         "pz = +0\nnz = -0\n");
    expect_int(r, "int1", 99);
    expect_int(r, "int4", -17);
    expect_int(r, "int6", 5349221);
    expect_int(r, "int8", 12345);
    expect_int(r, "hex1", 0xDEADBEEF);
    expect_int(r, "hex3", 0xdeadbeef);
    expect_int(r, "oct1", 01234567);
    expect_int(r, "oct2", 0755);
    expect_int(r, "bin1", 214);
    expect_int(r, "max", INT64_MAX);
    expect_int(r, "min", INT64_MIN);
    expect_int(r, "nz", 0);
    toml_free(r);
}

Test(toml_strict, bad_integers) {
    bad("a = 01\n", 1, "leading zeros");
    bad("a = 0_1\n", 1, "leading zeros");
    bad("a = 1__000\n", 1, "underscore");
    bad("a = _1\n", 1, "invalid value");
    bad("a = 1_\n", 1, "underscore");
    bad("a = 0x_1\n", 1, "underscore");
    bad("a = +0x1\n", 1, "invalid value");
    bad("a = 0X1\n", 1, "invalid value");
    bad("a = 0xG\n", 1, "invalid value");
    bad("a = 0o8\n", 1, "invalid value");
    bad("a = 0b2\n", 1, "invalid value");
    bad("a = 9223372036854775808\n", 1, "out of range");
    bad("a = 0x8000000000000000\n", 1, "out of range");
    bad("a = 12abc\n", 1, "invalid value");
}

Test(toml_spec, floats) {
    toml_value_t *r = ok("flt1 = +1.0\nflt2 = 3.1415\nflt3 = -0.01\n"
                         "flt4 = 5e+22\nflt5 = 1e06\nflt6 = -2E-2\n"
                         "flt7 = 6.626e-34\nflt8 = 224_617.445_991_228\n"
                         "sf1 = inf\nsf2 = +inf\nsf3 = -inf\nsf4 = nan\nsf5 = +nan\nsf6 = -nan\n");
    expect_float(r, "flt1", 1.0);
    expect_float(r, "flt3", -0.01);
    expect_float(r, "flt4", 5e22);
    expect_float(r, "flt5", 1e6);
    expect_float(r, "flt6", -2e-2);
    expect_float(r, "flt7", 6.626e-34);
    expect_float(r, "flt8", 224617.445991228);
    cr_expect(isinf(at(r, "sf1")->u.flt) && at(r, "sf1")->u.flt > 0);
    cr_expect(isinf(at(r, "sf3")->u.flt) && at(r, "sf3")->u.flt < 0);
    cr_expect(isnan(at(r, "sf4")->u.flt));
    cr_expect(isnan(at(r, "sf6")->u.flt));
    toml_free(r);
}

Test(toml_spec, invalid_floats) {
    bad("invalid_float_1 = .7\n", 1, NULL);
    bad("invalid_float_2 = 7.\n", 1, "invalid value");
    bad("invalid_float_3 = 3.e+20\n", 1, "invalid value");
    bad("a = 1e\n", 1, "invalid value");
    bad("a = 03.14\n", 1, "leading zeros");
    bad("a = 1e400\n", 1, "out of range");
    bad("a = infinity\n", 1, "invalid value");
}

Test(toml_spec, booleans) {
    toml_value_t *r = ok("bool1 = true\nbool2 = false\n");
    cr_expect(at(r, "bool1")->type == TOML_BOOLEAN && at(r, "bool1")->u.boolean);
    cr_expect(!at(r, "bool2")->u.boolean);
    toml_free(r);
    bad("b = True\n", 1, "invalid value");
    bad("b = yes\n", 1, "strings need quotes");
}

Test(toml_strict, dates_refused) {
    bad("odt1 = 1979-05-27T07:32:00Z\n", 1, "dates and times are not supported");
    bad("odt4 = 1979-05-27 07:32:00Z\n", 1, "dates and times are not supported");
    bad("ld1 = 1979-05-27\n", 1, "dates and times are not supported");
    bad("lt1 = 07:32:00\n", 1, "dates and times are not supported");
}

/* ---- spec: arrays and tables ---------------------------------------------------- */

Test(toml_spec, arrays) {
    toml_value_t *r = ok("integers = [ 1, 2, 3 ]\n"
                         "colors = [ \"red\", \"yellow\", \"green\" ]\n"
                         "nested_arrays_of_ints = [ [ 1, 2 ], [3, 4, 5] ]\n"
                         "nested_mixed_array = [ [ 1, 2 ], [\"a\", \"b\", \"c\"] ]\n"
                         "string_array = [ \"all\", 'strings', \"\"\"are the same\"\"\", "
                         "'''type''' ]\n"
                         "numbers = [ 0.1, 0.2, 0.5, 1, 2, 5 ]\n"
                         "contributors = [\n  \"Foo Bar <foo@example.com>\",\n"
                         "  { name = \"Baz Qux\", email = \"bazqux@example.com\", url = "
                         "\"https://example.com/bazqux\" }\n]\n"
                         "integers2 = [\n  1, 2, 3\n]\n"
                         "integers3 = [\n  1,\n  2, # this is ok\n]\n");
    const toml_value_t *a = at(r, "nested_arrays_of_ints");
    cr_assert_eq(a->type, TOML_ARRAY);
    cr_assert_eq(a->u.array.len, 2);
    cr_expect_eq(a->u.array.items[1]->u.array.len, 3);
    cr_expect_eq(at(r, "numbers")->u.array.len, 6);
    cr_expect_eq(at(r, "integers3")->u.array.len, 2);
    const toml_value_t *c = at(r, "contributors");
    cr_assert_eq(c->u.array.len, 2);
    cr_expect_eq(c->u.array.items[1]->type, TOML_TABLE);
    toml_free(r);
    bad("a = [1,,2]\n", 1, "expected a value");
    bad("a = [1 2]\n", 1, "expected ',' or ']'");
    bad("a = [1, 2\n", 2, NULL);
}

Test(toml_spec, tables) {
    toml_value_t *r = ok("[table-1]\nkey1 = \"some string\"\nkey2 = 123\n\n"
                         "[table-2]\nkey1 = \"another string\"\nkey2 = 456\n"
                         "[dog.\"tater.man\"]\ntype.name = \"pug\"\n"
                         "[a.b.c]            # this is best practice\n"
                         "[ d.e.f ]          # same as [d.e.f]\n"
                         "[ g .  h  . i ]    # same as [g.h.i]\n"
                         "[ j . \"ʞ\" . 'l' ]  # same as [j.\"ʞ\".'l']\n");
    expect_int(r, "table-2.key2", 456);
    const toml_value_t *d = toml_get(toml_get(r, "dog"), "tater.man");
    cr_assert(d);
    expect_str(d, "type.name", "pug");
    cr_expect(at(r, "g.h.i")->type == TOML_TABLE);
    toml_free(r);
    r = ok("# [x] you\n# [x.y] don't\n# [x.y.z] need these\n[x.y.z.w] # for this to work\n"
           "[x] # defining a super-table afterward is ok\n");
    toml_free(r);
}

Test(toml_spec, invalid_tables) {
    bad("[fruit]\napple = \"red\"\n\n[fruit]\norange = \"orange\"\n", 4, "defined twice");
    bad("[fruit]\napple = \"red\"\n\n[fruit.apple]\ntexture = \"smooth\"\n", 4,
        "already a string");
    bad("[fruit]\napple.color = \"red\"\napple.taste.sweet = true\n[fruit.apple]\n", 4,
        "dotted keys");
    bad("[fruit]\napple.color = \"red\"\napple.taste.sweet = true\n[fruit.apple.taste]\n", 4,
        "dotted keys");
    bad("[a]\n[a.b]\n[a]\n", 3, "defined twice");
    bad("[a.b.c]\nz = 9\n[a]\nb.c.t = 1\n", 4, "[table] header");
    bad("[]\n", 1, "expected a key");
    bad("[a\n", 1, "to close the table header");
    bad("[a.]\n", 1, "expected a key");
}

Test(toml_spec, tables_and_dotted_keys) {
    toml_value_t *r = ok("[fruit]\napple.color = \"red\"\napple.taste.sweet = true\n"
                         "[fruit.apple.texture]  # you can add sub-tables\nsmooth = true\n");
    cr_expect(at(r, "fruit.apple.texture.smooth")->u.boolean);
    cr_expect(at(r, "fruit.apple.taste.sweet")->u.boolean);
    toml_free(r);
    r = ok("fruit = \"x\"\n[dog]\nbreed.name = 'x'\n");
    toml_free(r);
    r = ok("# Top-level table begins.\nname = \"Fido\"\nbreed = \"pug\"\n\n"
           "# Top-level table ends.\n[owner]\nname = \"Regina Dogman\"\nmember_since = 1999\n");
    expect_str(r, "owner.name", "Regina Dogman");
    expect_str(r, "name", "Fido");
    toml_free(r);
}

Test(toml_spec, inline_tables) {
    toml_value_t *r = ok("name = { first = \"Tom\", last = \"Preston-Werner\" }\n"
                         "point = { x = 1, y = 2 }\n"
                         "animal = { type.name = \"pug\" }\n"
                         "empty = {}\n");
    expect_str(r, "name.last", "Preston-Werner");
    expect_int(r, "point.y", 2);
    expect_str(r, "animal.type.name", "pug");
    toml_free(r);
    bad("[product]\ntype = { name = \"Nail\" }\ntype.edible = false  # INVALID\n", 3,
        "inline table");
    bad("[product]\ntype.name = \"Nail\"\ntype = { edible = false }  # INVALID\n", 3,
        "duplicate key");
    bad("a = { x = 1, }\n", 1, "trailing comma");
    bad("a = { x = 1\n}\n", 1, "one line");
    bad("a = { x = 1, x = 2 }\n", 1, "duplicate key");
    bad("a = { b = 1 }\n[a.c]\n", 2, "inline table");
}

Test(toml_spec, arrays_of_tables) {
    toml_value_t *r = ok("[[products]]\nname = \"Hammer\"\nsku = 738594937\n\n"
                         "[[products]]  # empty table within the array\n\n"
                         "[[products]]\nname = \"Nail\"\nsku = 284758393\n\ncolor = \"gray\"\n");
    const toml_value_t *p = at(r, "products");
    cr_assert_eq(p->type, TOML_ARRAY);
    cr_assert_eq(p->u.array.len, 3);
    cr_expect_eq(p->u.array.items[1]->u.table.len, 0);
    expect_str(p->u.array.items[2], "color", "gray");
    toml_free(r);
    r = ok("[[fruits]]\nname = \"apple\"\n\n[fruits.physical]  # subtable\ncolor = \"red\"\n"
           "shape = \"round\"\n\n[[fruits.varieties]]  # nested array of tables\n"
           "name = \"red delicious\"\n\n[[fruits.varieties]]\nname = \"granny smith\"\n\n"
           "[[fruits]]\nname = \"banana\"\n\n[[fruits.varieties]]\nname = \"plantain\"\n");
    const toml_value_t *f = at(r, "fruits");
    cr_assert_eq(f->u.array.len, 2);
    expect_str(f->u.array.items[0], "physical.color", "red");
    cr_expect_eq(toml_get(f->u.array.items[0], "varieties")->u.array.len, 2);
    expect_str(toml_get(f->u.array.items[1], "varieties")->u.array.items[0], "name", "plantain");
    toml_free(r);
    r = ok("points = [ { x = 1, y = 2, z = 3 },\n           { x = 7, y = 8, z = 9 },\n"
           "           { x = 2, y = 4, z = 8 } ]\n");
    cr_expect_eq(at(r, "points")->u.array.len, 3);
    toml_free(r);
}

Test(toml_spec, invalid_arrays_of_tables) {
    bad("[fruit.physical]\ncolor = \"red\"\nshape = \"round\"\n\n[[fruit]]\nname = \"apple\"\n",
        5, "already defined");
    bad("fruits = []\n\n[[fruits]] # Not allowed\n", 3, "already defined");
    bad("[[fruits]]\nname = \"apple\"\n\n[[fruits.varieties]]\nname = \"red delicious\"\n\n"
        "# INVALID: This table conflicts with the previous array of tables\n"
        "[fruits.varieties]\nname = \"granny smith\"\n",
        8, "array of tables");
    bad("[[fruits]]\n[fruits.physical]\ncolor = \"red\"\n[[fruits.physical]]\ncolor = \"green\"\n",
        4, "already defined");
    bad("[[a] ]\n", 1, "]]");
}

/* ---- positions, limits, odd input --------------------------------------------- */

Test(toml_strict, positions) {
    toml_error_t err;
    const char *doc = "a = 1\n\n  b = 0x\n";
    cr_assert_null(toml_parse(doc, strlen(doc), &err));
    cr_expect_eq(err.line, 3);
    cr_expect_eq(err.col, 7, "col %d", err.col);
    doc = "a = 1\nb = \"x\" c\n";
    cr_assert_null(toml_parse(doc, strlen(doc), &err));
    cr_expect_eq(err.line, 2);
    cr_expect_eq(err.col, 9, "col %d", err.col);
}

Test(toml_strict, empty_and_blank) {
    toml_value_t *r = ok("");
    cr_expect_eq(r->u.table.len, 0);
    toml_free(r);
    r = ok("\xEF\xBB\xBF# bom\n\n   \t\n");
    toml_free(r);
    toml_error_t err;
    r = toml_parse("a = 1", 5, &err); /* no final newline; not NUL-terminated use */
    cr_assert(r);
    toml_free(r);
    cr_assert_null(toml_parse("a = 1\0b", 7, &err));
}

Test(toml_strict, crlf) {
    toml_value_t *r = ok("a = 1\r\nb = \"\"\"x\r\ny\"\"\"\r\n# c\r\n");
    expect_str(r, "b", "x\ny");
    toml_free(r);
}

Test(toml_strict, depth_limit) {
    char doc[512];
    size_t n = 0;
    n += (size_t)snprintf(doc, sizeof doc, "a = ");
    for (int i = 0; i < 100; i++) doc[n++] = '[';
    for (int i = 0; i < 100; i++) doc[n++] = ']';
    doc[n] = '\0';
    bad(doc, 1, "nested deeper");
}

Test(toml_strict, nul_in_quoted_key) {
    toml_value_t *r = ok("\"a\\u0000b\" = 1\n");
    cr_expect_eq(r->u.table.entries[0].key_len, 3);
    toml_free(r);
}

// json_test.cpp: Json parsing (valid and every kind of malformed input), printing, round trips,
// accessors and builders.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <string>

#include "core/error.hpp"
#include "core/json.hpp"

namespace bitgrad::test {
namespace {

using core::Json;

std::string roundtrip(const std::string& text) { return Json::parse(text).dump(); }

// Parsing `text` must throw Error whose message contains `fragment`.
void require_parse_error(const std::string& text, const std::string& fragment) {
  INFO("input: " << text);
  REQUIRE_THROWS_WITH(Json::parse(text), Catch::Contains(fragment));
}

TEST_CASE("json: scalars parse and print", "[json]") {
  CHECK(Json::parse("null").is_null());
  CHECK(Json::parse("true").as_bool());
  CHECK_FALSE(Json::parse("false").as_bool());
  CHECK(Json::parse("\"hi\"").as_string() == "hi");
  CHECK(Json::parse("  42 \n").as_int64() == 42);
  CHECK(Json::parse("-7").as_number() == -7.0);
  CHECK(Json::parse("2.5").as_number() == 2.5);
  CHECK(roundtrip("null") == "null");
  CHECK(roundtrip("true") == "true");
  CHECK(roundtrip(" [ 1 , 2 ] ") == "[1,2]");
}

TEST_CASE("json: numbers follow RFC 8259 and print deterministically", "[json]") {
  CHECK(roundtrip("0") == "0");
  CHECK(roundtrip("-0") == "-0");
  CHECK(std::signbit(Json::parse("-0").as_number()));
  CHECK(roundtrip("1.0") == "1");  // integral values print without a decimal point
  CHECK(roundtrip("1e2") == "100");
  CHECK(roundtrip("1E+2") == "100");
  CHECK(roundtrip("0.1") == "0.1");
  CHECK(roundtrip("-12.5e-1") == "-1.25");
  CHECK(roundtrip("1e300") == "1e+300");
  CHECK(roundtrip("123456789012") == "123456789012");
  // int64 extremes are kept exactly even though a double cannot hold them.
  CHECK(Json::parse("9223372036854775807").as_int64() == std::numeric_limits<int64_t>::max());
  CHECK(Json::parse("-9223372036854775808").as_int64() == std::numeric_limits<int64_t>::min());
  CHECK(roundtrip("9007199254740993") == "9007199254740993");
  // Beyond int64: a double, printed in the shortest exact form.
  CHECK(Json::parse("18446744073709551616").as_number() == 18446744073709551616.0);
  CHECK(roundtrip("18446744073709551616") == "18446744073709551616");  // 2^64 exactly
  CHECK(roundtrip("1e20") == "1e+20");  // shortest of the fixed and exponent forms
  CHECK(Json::parse(roundtrip("12345678901234567890123")).as_number() == 12345678901234567890123.0);
  // Underflow rounds to zero; subnormals are kept.
  CHECK(Json::parse("1e-400").as_number() == 0.0);
  CHECK(std::signbit(Json::parse("-1e-400").as_number()));
  CHECK(Json::parse("4e-320").as_number() > 0.0);
  // Shortest round trip of an arbitrary double.
  const double third = 1.0 / 3.0;
  CHECK(Json::parse(Json(third).dump()).as_number() == third);
  CHECK(Json(0.1f).dump() == "0.10000000149011612");  // floats widen exactly to double
  // Non-finite values cannot be written in JSON: they print as null.
  CHECK(Json(std::numeric_limits<double>::infinity()).dump() == "null");
  CHECK(Json(std::nan("")).dump() == "null");
}

TEST_CASE("json: integer accessors", "[json]") {
  CHECK(Json::parse("3").is_integer());
  CHECK(Json::parse("3.0").is_integer());
  CHECK(Json::parse("3.0").as_int64() == 3);
  CHECK_FALSE(Json::parse("3.5").is_integer());
  REQUIRE_THROWS_WITH(Json::parse("3.5").as_int64(), Catch::Contains("expected an integer"));
  REQUIRE_THROWS_WITH(Json::parse("1e19").as_int64(), Catch::Contains("expected an integer"));
  CHECK_FALSE(Json::parse("\"3\"").is_integer());
  CHECK(Json(uint64_t{18446744073709551615u}).as_number() == 18446744073709551615.0);
  CHECK_FALSE(Json(uint64_t{18446744073709551615u}).is_integer());
  CHECK(Json(size_t{5}).dump() == "5");
  CHECK(Json(-3).dump() == "-3");
}

TEST_CASE("json: string escapes and unicode", "[json]") {
  CHECK(Json::parse(R"("a\"b\\c\/d\b\f\n\r\t")").as_string() == "a\"b\\c/d\b\f\n\r\t");
  CHECK(Json::parse(R"("\u0041\u00e9\u20AC")").as_string() == "A\xC3\xA9\xE2\x82\xAC");
  // Surrogate pair: U+1F600 (grinning face) = F0 9F 98 80.
  CHECK(Json::parse(R"("\ud83d\ude00")").as_string() == "\xF0\x9F\x98\x80");
  CHECK(Json::parse(R"("\u0000")").as_string() == std::string(1, '\0'));
  // Raw UTF-8 passes through unchanged, both ways.
  CHECK(Json::parse("\"\xC3\xA9\xF0\x9F\x98\x80\"").as_string() == "\xC3\xA9\xF0\x9F\x98\x80");
  CHECK(Json("\xC3\xA9").dump() == "\"\xC3\xA9\"");
  // Dump escapes quotes, backslashes and control characters only.
  CHECK(Json(std::string("q\"b\\n\n\t\x01/", 9)).dump() == R"("q\"b\\n\n\t\u0001/")");
  CHECK(Json(std::string(1, '\0')).dump() == R"("\u0000")");
  const std::string nasty = std::string("\x7f\x1f\"\\ \xE2\x82\xAC", 8);
  CHECK(Json::parse(Json(nasty).dump()).as_string() == nasty);
}

TEST_CASE("json: arrays and objects keep insertion order and round-trip", "[json]") {
  const std::string text = R"({"z":1,"a":[true,false,null,"s",{"k":[]}],"m":{},"n":-2.5})";
  const Json j = Json::parse(text);
  CHECK(j.dump() == text);
  REQUIRE(j.is_object());
  CHECK(j.size() == 4);
  CHECK(j.as_object()[0].first == "z");
  CHECK(j.as_object()[1].first == "a");
  CHECK(j["a"].size() == 5);
  CHECK(j["a"].at(4)["k"].is_array());
  CHECK(j["a"].at(4)["k"].size() == 0);
  CHECK(j.contains("m"));
  CHECK_FALSE(j.contains("zz"));
  CHECK(j.find("zz") == nullptr);
  CHECK(Json::parse(j.dump()) == j);
  CHECK(Json::parse("{ }").dump() == "{}");
  CHECK(Json::parse("[ ]").dump() == "[]");
  CHECK(Json::parse(" \t\r\n{ \"a\" : [ 1 ,\n2 ] } \n").dump() == R"({"a":[1,2]})");
}

TEST_CASE("json: builders", "[json]") {
  Json obj = Json::object();
  obj.set("name", "conv1").set("bits", 2).set("scale", 0.5).set("ok", true).set("none", nullptr);
  Json dims = Json::array();
  dims.push_back(3).push_back(int64_t{4});
  obj.set("dims", dims);
  obj.set("bits", 4);  // replaces in place, keeping the position
  CHECK(obj.dump() ==
        R"({"name":"conv1","bits":4,"scale":0.5,"ok":true,"none":null,"dims":[3,4]})");
  CHECK(Json::array({Json(1), Json("x")}).dump() == R"([1,"x"])");
  CHECK(Json(std::string_view("sv")).as_string() == "sv");
  // Copies are deep.
  Json copy = obj;
  copy.set("name", "fc");
  CHECK(obj["name"].as_string() == "conv1");
  CHECK_FALSE(copy == obj);
}

TEST_CASE("json: type mismatches throw naming expected and found types", "[json]") {
  const Json n = Json::parse("1");
  REQUIRE_THROWS_WITH(n.as_string(), Catch::Contains("expected string, found number"));
  REQUIRE_THROWS_WITH(n.as_bool(), Catch::Contains("expected bool, found number"));
  REQUIRE_THROWS_WITH(n.as_array(), Catch::Contains("expected array, found number"));
  REQUIRE_THROWS_WITH(Json().as_object(), Catch::Contains("expected object, found null"));
  REQUIRE_THROWS_WITH(Json("s").as_number(), Catch::Contains("expected number, found string"));
  REQUIRE_THROWS_WITH(Json("s").as_int64(), Catch::Contains("expected number, found string"));
  REQUIRE_THROWS_WITH(n["k"], Catch::Contains("expected object, found number"));
  REQUIRE_THROWS_WITH(Json::parse("{}")["k"], Catch::Contains("no member 'k'"));
  REQUIRE_THROWS_WITH(Json::parse("[1]").at(1), Catch::Contains("index 1 out of range"));
  REQUIRE_THROWS_WITH(n.size(), Catch::Contains("expected array or object"));
  Json a = Json::array();
  REQUIRE_THROWS_AS(a.set("k", 1), Error);
  Json o = Json::object();
  REQUIRE_THROWS_AS(o.push_back(1), Error);
}

TEST_CASE("json: malformed input raises Error with position and expectation", "[json]") {
  require_parse_error("", "at byte 0: expected a JSON value");
  require_parse_error("   ", "at byte 3: expected a JSON value");
  require_parse_error("nul", "expected 'null'");
  require_parse_error("tru", "expected 'true'");
  require_parse_error("fals", "expected 'false'");
  require_parse_error("True", "expected a JSON value");
  require_parse_error("NaN", "expected a JSON value");
  require_parse_error("Infinity", "expected a JSON value");
  require_parse_error("'a'", "expected a JSON value");
  // Trailing garbage.
  require_parse_error("1 2", "at byte 2: expected end of input");
  require_parse_error("{} x", "expected end of input");
  require_parse_error("[1]]", "expected end of input");
  require_parse_error("nullx", "expected end of input");
  // Numbers outside the grammar.
  require_parse_error("01", "no leading zeros");
  require_parse_error("-", "a digit in number");
  require_parse_error("+1", "expected a JSON value");
  require_parse_error(".5", "expected a JSON value");
  require_parse_error("1.", "a digit after the decimal point");
  require_parse_error("1.e5", "a digit after the decimal point");
  require_parse_error("1e", "a digit in the exponent");
  require_parse_error("1e+", "a digit in the exponent");
  require_parse_error("-a", "a digit in number");
  require_parse_error("0x10", "expected end of input");
  require_parse_error("1e400", "within the range of a double");
  require_parse_error("-1e999999999999999999999", "within the range of a double");
  // Arrays and objects.
  require_parse_error("[", "expected a JSON value");
  require_parse_error("[1", "expected ',' or ']'");
  require_parse_error("[1,]", "at byte 3: expected a JSON value");
  require_parse_error("[1 2]", "expected ',' or ']'");
  require_parse_error("{", "'\"' starting an object key");
  require_parse_error("{\"a\"}", "':' after object key");
  require_parse_error("{\"a\":}", "expected a JSON value");
  require_parse_error("{\"a\":1,}", "'\"' starting an object key");
  require_parse_error("{\"a\":1 \"b\":2}", "',' or '}'");
  require_parse_error("{a:1}", "'\"' starting an object key");
  require_parse_error("{1:1}", "'\"' starting an object key");
  require_parse_error("{\"a\":1,\"a\":2}",
                      "at byte 7: expected unique object keys (duplicate key 'a')");
  // Strings.
  require_parse_error("\"abc", "'\"' closing the string");
  require_parse_error("\"a\nb\"", "no raw control characters");
  require_parse_error("\"a\tb\"", "no raw control characters");
  require_parse_error(R"("\x")", "one of");
  require_parse_error("\"\\", "an escape character");
  require_parse_error(R"("\u12")", "4 hex digits");
  require_parse_error(R"("\u12G4")", "4 hex digits");
  require_parse_error(R"("\ud83d")", "low surrogate after a high surrogate");
  require_parse_error(R"("\ud83dx")", "low surrogate after a high surrogate");
  require_parse_error(R"("\ud83d\u0041")", "a low surrogate DC00-DFFF");
  require_parse_error(R"("\ude00")", "unpaired low surrogate");
  // Invalid UTF-8: stray continuation, overlong, surrogate, above U+10FFFF, truncated sequence.
  require_parse_error("\"\x80\"", "valid UTF-8");
  require_parse_error("\"\xC0\xAF\"", "valid UTF-8");
  require_parse_error("\"\xE0\x80\xAF\"", "valid UTF-8");
  require_parse_error("\"\xED\xA0\x80\"", "valid UTF-8");
  require_parse_error("\"\xF4\x90\x80\x80\"", "valid UTF-8");
  require_parse_error("\"\xE2\x82\"", "valid UTF-8");
  require_parse_error("\"\xFF\"", "byte 0xFF");
  // Embedded NUL after a value is trailing garbage.
  require_parse_error(std::string("1\0", 2), "byte 0x00");
}

TEST_CASE("json: nesting depth is limited", "[json]") {
  const int limit = Json::kMaxDepth;
  const std::string ok =
      std::string(static_cast<size_t>(limit), '[') + std::string(static_cast<size_t>(limit), ']');
  CHECK(Json::parse(ok).dump() == ok);
  const std::string too_deep = "[" + ok + "]";
  require_parse_error(too_deep, "levels of nested arrays/objects");
  std::string objects;
  for (int i = 0; i <= limit; ++i) objects += "{\"a\":";
  objects += "1" + std::string(static_cast<size_t>(limit) + 1, '}');
  require_parse_error(objects, "levels of nested arrays/objects");
  // Hostile input far deeper than the limit fails quickly instead of overflowing the stack.
  require_parse_error(std::string(1'000'000, '['), "levels of nested arrays/objects");
}

TEST_CASE("json: every truncation of a valid document is rejected", "[json]") {
  const std::string text =
      R"({"a":[1,-2.5e3,true,false,null],"b":"x\u00e9\ud83d\ude00\n","c":{"d":{}}})";
  REQUIRE_NOTHROW(Json::parse(text));
  for (size_t n = 0; n < text.size(); ++n) {
    INFO("prefix length " << n);
    REQUIRE_THROWS_AS(Json::parse(text.substr(0, n)), Error);
  }
}

}  // namespace
}  // namespace bitgrad::test

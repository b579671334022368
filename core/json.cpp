// json.cpp: the Json value, its recursive-descent parser (strict RFC 8259) and its printer.
#include "core/json.hpp"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <system_error>
#include <unordered_set>

#include "core/error.hpp"

namespace bitgrad::core {

namespace {

// 2^63 as a double: integral doubles in [-2^63, 2^63) fit in int64.
constexpr double kTwo63 = 9223372036854775808.0;

bool is_digit(char c) { return c >= '0' && c <= '9'; }

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

void dump_string(std::string& out, const std::string& s) {
  out += '"';
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(c));
          out += buf;
        } else {
          out += ch;
        }
    }
  }
  out += '"';
}

void dump_number(std::string& out, double v) {
  if (!std::isfinite(v)) {
    out += "null";
    return;
  }
  if (v == std::trunc(v) && v >= -kTwo63 && v < kTwo63) {
    if (v == 0.0 && std::signbit(v)) {
      out += "-0";
    } else {
      out += std::to_string(static_cast<int64_t>(v));
    }
    return;
  }
  char buf[32];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);  // shortest round-trip form
  out.append(buf, r.ptr);
}

}  // namespace

// The parser is a friend of Json so that it can fill number fields directly.
class JsonParser {
 public:
  explicit JsonParser(std::string_view text) : text_(text) {}

  Json parse_document() {
    skip_whitespace();
    Json value = parse_value(0);
    skip_whitespace();
    if (pos_ != text_.size()) fail("end of input after the JSON value");
    return value;
  }

 private:
  [[noreturn]] void fail(std::string_view expected) const { fail_at(pos_, expected); }

  [[noreturn]] void fail_at(size_t pos, std::string_view expected) const {
    std::string found;
    if (pos >= text_.size()) {
      found = "end of input";
    } else {
      const auto c = static_cast<unsigned char>(text_[pos]);
      char buf[16];
      if (c >= 0x20 && c < 0x7F) {
        std::snprintf(buf, sizeof buf, "'%c'", c);
      } else {
        std::snprintf(buf, sizeof buf, "byte 0x%02X", static_cast<unsigned>(c));
      }
      found = buf;
    }
    throw Error("JSON parse error at byte " + std::to_string(pos) + ": expected " +
                std::string(expected) + ", found " + found);
  }

  bool at_end() const { return pos_ >= text_.size(); }
  char peek() const { return at_end() ? '\0' : text_[pos_]; }

  void skip_whitespace() {
    while (!at_end()) {
      const char c = text_[pos_];
      if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
      ++pos_;
    }
  }

  void expect_char(char c, std::string_view expected) {
    if (at_end() || text_[pos_] != c) fail(expected);
    ++pos_;
  }

  Json parse_value(int depth) {
    switch (peek()) {
      case '{': return parse_object(depth + 1);
      case '[': return parse_array(depth + 1);
      case '"': return Json(parse_string());
      case 't': parse_literal("true"); return Json(true);
      case 'f': parse_literal("false"); return Json(false);
      case 'n': parse_literal("null"); return Json();
      default:
        if (peek() == '-' || is_digit(peek())) return parse_number();
        fail("a JSON value (object, array, string, number, true, false or null)");
    }
  }

  void parse_literal(std::string_view word) {
    if (text_.substr(pos_, word.size()) != word) {
      std::string expected(1, '\'');  // built by appending: GCC 12 -Wrestrict misfires on "'" + s
      expected.append(word).push_back('\'');
      fail(expected);
    }
    pos_ += word.size();
  }

  void check_depth(int depth) const {
    if (depth > Json::kMaxDepth) {
      fail("at most " + std::to_string(Json::kMaxDepth) + " levels of nested arrays/objects");
    }
  }

  Json parse_object(int depth) {
    check_depth(depth);
    ++pos_;  // '{'
    Json obj = Json::object();
    std::unordered_set<std::string> seen;  // hashing keeps hostile headers with many keys linear
    skip_whitespace();
    if (peek() == '}') {
      ++pos_;
      return obj;
    }
    while (true) {
      skip_whitespace();
      if (peek() != '"') fail("'\"' starting an object key");
      const size_t key_pos = pos_;
      std::string key = parse_string();
      if (!seen.insert(key).second) {
        fail_at(key_pos, "unique object keys (duplicate key '" + key + "')");
      }
      skip_whitespace();
      expect_char(':', "':' after object key");
      skip_whitespace();
      Json value = parse_value(depth);
      obj.object_.emplace_back(std::move(key), std::move(value));
      skip_whitespace();
      if (peek() == ',') {
        ++pos_;
        continue;
      }
      expect_char('}', "',' or '}' after object member");
      return obj;
    }
  }

  Json parse_array(int depth) {
    check_depth(depth);
    ++pos_;  // '['
    Json arr = Json::array();
    skip_whitespace();
    if (peek() == ']') {
      ++pos_;
      return arr;
    }
    while (true) {
      skip_whitespace();
      arr.array_.push_back(parse_value(depth));
      skip_whitespace();
      if (peek() == ',') {
        ++pos_;
        continue;
      }
      expect_char(']', "',' or ']' after array element");
      return arr;
    }
  }

  uint32_t parse_hex4() {
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) {
      const int h = at_end() ? -1 : hex_value(text_[pos_]);
      if (h < 0) fail("4 hex digits after \\u");
      v = v * 16 + static_cast<uint32_t>(h);
      ++pos_;
    }
    return v;
  }

  // Validates one UTF-8 sequence starting at pos_ (RFC 3629: no overlongs, no surrogates,
  // nothing above U+10FFFF) and appends it.
  void copy_utf8_sequence(std::string& out) {
    const size_t start = pos_;
    const auto b0 = static_cast<unsigned char>(text_[pos_]);
    int extra = 0;
    unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte
    if (b0 >= 0xC2 && b0 <= 0xDF) {
      extra = 1;
    } else if (b0 >= 0xE0 && b0 <= 0xEF) {
      extra = 2;
      if (b0 == 0xE0) lo = 0xA0;
      if (b0 == 0xED) hi = 0x9F;
    } else if (b0 >= 0xF0 && b0 <= 0xF4) {
      extra = 3;
      if (b0 == 0xF0) lo = 0x90;
      if (b0 == 0xF4) hi = 0x8F;
    } else {
      fail("valid UTF-8 in string");
    }
    for (int i = 1; i <= extra; ++i) {
      const size_t p = start + static_cast<size_t>(i);
      const auto b = p < text_.size() ? static_cast<unsigned char>(text_[p]) : 0;
      const unsigned char min = i == 1 ? lo : 0x80, max = i == 1 ? hi : 0xBF;
      if (b < min || b > max) fail_at(p, "valid UTF-8 in string");
    }
    out.append(text_.substr(start, static_cast<size_t>(extra) + 1));
    pos_ = start + static_cast<size_t>(extra) + 1;
  }

  std::string parse_string() {
    ++pos_;  // opening quote
    std::string out;
    while (true) {
      if (at_end()) fail("'\"' closing the string");
      const char c = text_[pos_];
      const auto uc = static_cast<unsigned char>(c);
      if (c == '"') {
        ++pos_;
        return out;
      }
      if (uc < 0x20) fail("no raw control characters in string (escape them)");
      if (uc >= 0x80) {
        copy_utf8_sequence(out);
        continue;
      }
      if (c != '\\') {
        out += c;
        ++pos_;
        continue;
      }
      ++pos_;
      if (at_end()) fail("an escape character after '\\'");
      const char e = text_[pos_];
      switch (e) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          const size_t escape_pos = pos_ - 1;
          ++pos_;
          uint32_t cp = parse_hex4();
          if (cp >= 0xDC00 && cp <= 0xDFFF) {
            fail_at(escape_pos, "a code point, not an unpaired low surrogate");
          }
          if (cp >= 0xD800 && cp <= 0xDBFF) {
            if (text_.substr(pos_, 2) != "\\u") fail("'\\u' low surrogate after a high surrogate");
            pos_ += 2;
            const size_t low_pos = pos_;
            const uint32_t low = parse_hex4();
            if (low < 0xDC00 || low > 0xDFFF) fail_at(low_pos, "a low surrogate DC00-DFFF");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
          }
          append_utf8(out, cp);
          continue;  // pos_ already past the escape
        }
        default: fail("one of \\\" \\\\ \\/ \\b \\f \\n \\r \\t \\u after '\\'");
      }
      ++pos_;
    }
  }

  Json parse_number() {
    const size_t start = pos_;
    const bool negative = peek() == '-';
    if (negative) ++pos_;
    // Integer part: 0 or [1-9][0-9]*.
    const size_t int_start = pos_;
    if (peek() == '0') {
      ++pos_;
    } else if (is_digit(peek())) {
      while (is_digit(peek())) ++pos_;
    } else {
      fail("a digit in number");
    }
    const size_t int_end = pos_;
    size_t frac_start = pos_, frac_end = pos_;
    bool has_frac = false, has_exp = false;
    if (peek() == '.') {
      ++pos_;
      has_frac = true;
      frac_start = pos_;
      if (!is_digit(peek())) fail("a digit after the decimal point");
      while (is_digit(peek())) ++pos_;
      frac_end = pos_;
    }
    int64_t exponent = 0;  // saturated, only used to classify out-of-range values
    if (peek() == 'e' || peek() == 'E') {
      ++pos_;
      has_exp = true;
      bool exp_negative = false;
      if (peek() == '+' || peek() == '-') {
        exp_negative = peek() == '-';
        ++pos_;
      }
      if (!is_digit(peek())) fail("a digit in the exponent");
      while (is_digit(peek())) {
        if (exponent < 1'000'000'000) exponent = exponent * 10 + (text_[pos_] - '0');
        ++pos_;
      }
      if (exp_negative) exponent = -exponent;
    }
    // A digit right after a leading zero ("01") is not part of any valid token.
    if (is_digit(peek())) fail("no leading zeros in number");

    const char* first = text_.data() + start;
    const char* last = text_.data() + pos_;
    Json out(Json::Type::kNumber);
    const auto r = std::from_chars(first, last, out.number_);
    if (r.ec == std::errc::result_out_of_range) {
      // Decimal exponent of the leading significant digit decides overflow versus underflow.
      int64_t magnitude = 0;
      const std::string_view int_digits = text_.substr(int_start, int_end - int_start);
      const std::string_view frac_digits = text_.substr(frac_start, frac_end - frac_start);
      if (int_digits != "0") {
        magnitude = static_cast<int64_t>(int_digits.size()) - 1 + exponent;
      } else {
        const size_t k = frac_digits.find_first_not_of('0');
        magnitude = -static_cast<int64_t>(k + 1) + exponent;
      }
      if (magnitude >= 0) fail_at(start, "a number within the range of a double");
      out.number_ = negative ? -0.0 : 0.0;  // underflow: rounds to zero
    } else if (r.ec != std::errc() || r.ptr != last) {
      fail_at(start, "a number");
    }
    // Exact int64 for integer literals (but keep "-0" as the double -0.0).
    if (!has_frac && !has_exp && !(negative && text_[int_start] == '0')) {
      int64_t v = 0;
      const auto ri = std::from_chars(first, last, v);
      if (ri.ec == std::errc() && ri.ptr == last) {
        out.integer_ = v;
        out.exact_integer_ = true;
      }
    }
    return out;
  }

  std::string_view text_;
  size_t pos_ = 0;
};

Json Json::array(Array items) {
  Json out(Type::kArray);
  out.array_ = std::move(items);
  return out;
}

Json Json::parse(std::string_view text) { return JsonParser(text).parse_document(); }

std::string_view Json::type_name(Type type) {
  switch (type) {
    case Type::kNull: return "null";
    case Type::kBool: return "bool";
    case Type::kNumber: return "number";
    case Type::kString: return "string";
    case Type::kArray: return "array";
    case Type::kObject: return "object";
  }
  return "unknown";
}

void Json::expect(Type type) const {
  check_lazy(type_ == type, [&] {
    return "Json: expected " + std::string(type_name(type)) + ", found " +
           std::string(type_name(type_));
  });
}

bool Json::is_integer() const {
  if (type_ != Type::kNumber) return false;
  if (exact_integer_) return true;
  return std::isfinite(number_) && number_ == std::trunc(number_) && number_ >= -kTwo63 &&
         number_ < kTwo63;
}

bool Json::as_bool() const {
  expect(Type::kBool);
  return bool_;
}

double Json::as_number() const {
  expect(Type::kNumber);
  return number_;
}

int64_t Json::as_int64() const {
  expect(Type::kNumber);
  if (exact_integer_) return integer_;
  check_lazy(is_integer(), [&] {
    std::string text;
    dump_number(text, number_);
    return "Json: expected an integer within int64, found " + text;
  });
  return static_cast<int64_t>(number_);
}

const std::string& Json::as_string() const {
  expect(Type::kString);
  return string_;
}

const Json::Array& Json::as_array() const {
  expect(Type::kArray);
  return array_;
}

const Json::Object& Json::as_object() const {
  expect(Type::kObject);
  return object_;
}

const Json* Json::find(std::string_view key) const {
  expect(Type::kObject);
  for (const auto& member : object_) {
    if (member.first == key) return &member.second;
  }
  return nullptr;
}

const Json& Json::operator[](std::string_view key) const {
  const Json* value = find(key);
  check_lazy(value != nullptr,
             [&] { return "Json: object has no member '" + std::string(key) + "'"; });
  return *value;
}

bool Json::contains(std::string_view key) const {
  return type_ == Type::kObject && find(key) != nullptr;
}

const Json& Json::at(size_t i) const {
  expect(Type::kArray);
  check_lazy(i < array_.size(), [&] {
    return "Json: index " + std::to_string(i) + " out of range for an array of " +
           std::to_string(array_.size()) + " elements";
  });
  return array_[i];
}

size_t Json::size() const {
  check_lazy(type_ == Type::kArray || type_ == Type::kObject, [&] {
    return "Json: expected array or object for size(), found " + std::string(type_name(type_));
  });
  return type_ == Type::kArray ? array_.size() : object_.size();
}

Json& Json::push_back(Json value) {
  expect(Type::kArray);
  array_.push_back(std::move(value));
  return *this;
}

Json& Json::set(std::string key, Json value) {
  expect(Type::kObject);
  for (auto& member : object_) {
    if (member.first == key) {
      member.second = std::move(value);
      return *this;
    }
  }
  object_.emplace_back(std::move(key), std::move(value));
  return *this;
}

bool operator==(const Json& a, const Json& b) {
  if (a.type_ != b.type_) return false;
  switch (a.type_) {
    case Json::Type::kNull: return true;
    case Json::Type::kBool: return a.bool_ == b.bool_;
    case Json::Type::kNumber:
      if (a.exact_integer_ && b.exact_integer_) return a.integer_ == b.integer_;
      return a.number_ == b.number_;
    case Json::Type::kString: return a.string_ == b.string_;
    case Json::Type::kArray: return a.array_ == b.array_;
    case Json::Type::kObject: return a.object_ == b.object_;
  }
  return false;
}

std::string Json::dump() const {
  std::string out;
  dump_to(out);
  return out;
}

void Json::dump_to(std::string& out) const {
  switch (type_) {
    case Type::kNull: out += "null"; break;
    case Type::kBool: out += bool_ ? "true" : "false"; break;
    case Type::kNumber:
      if (exact_integer_) {
        out += std::to_string(integer_);
      } else {
        dump_number(out, number_);
      }
      break;
    case Type::kString: dump_string(out, string_); break;
    case Type::kArray:
      out += '[';
      for (size_t i = 0; i < array_.size(); ++i) {
        if (i > 0) out += ',';
        array_[i].dump_to(out);
      }
      out += ']';
      break;
    case Type::kObject:
      out += '{';
      for (size_t i = 0; i < object_.size(); ++i) {
        if (i > 0) out += ',';
        dump_string(out, object_[i].first);
        out += ':';
        object_[i].second.dump_to(out);
      }
      out += '}';
      break;
  }
}

}  // namespace bitgrad::core

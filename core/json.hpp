// json.hpp: Json, a small JSON value (RFC 8259) with a strict parser and a compact, deterministic
// printer. Used for the safetensors header, checkpoint metadata and the CLI's --json output.
// Not here: comments, trailing commas, NaN/Infinity literals, streaming, or JSON Pointer/Patch.
#pragma once

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace bitgrad::core {

// A JSON value: null, bool, number, string, array or object.
//
// Numbers are doubles. An integer literal that fits in int64 (and any value built from an integer
// type) also keeps its exact int64 value, so as_int64() is exact beyond 2^53.
// Objects keep their members in INSERTION order (the order of the text for parsed values, the order
// of set() calls for built ones); dump() prints them in that order, which makes output
// deterministic and lets writers control the layout (safetensors puts "__metadata__" first). Keys
// are unique: parse() rejects duplicate keys and set() replaces an existing member. Value
// semantics: copies are deep.
class Json {
 public:
  enum class Type { kNull, kBool, kNumber, kString, kArray, kObject };
  using Array = std::vector<Json>;
  using Member = std::pair<std::string, Json>;
  using Object = std::vector<Member>;

  // Maximum nesting of arrays/objects accepted by parse(): deeper input is rejected instead of
  // overflowing the stack.
  static constexpr int kMaxDepth = 256;

  Json() = default;  // null
  Json(std::nullptr_t) {}
  Json(bool value) : type_(Type::kBool), bool_(value) {}
  // Any integer type, char included (bool picks the non-template overload above).
  template <std::integral T>
  Json(T value) : type_(Type::kNumber) {
    set_integer(value);
  }
  template <std::floating_point T>
  Json(T value) : type_(Type::kNumber), number_(static_cast<double>(value)) {}
  Json(const char* value) : type_(Type::kString), string_(value) {}
  Json(std::string value) : type_(Type::kString), string_(std::move(value)) {}
  Json(std::string_view value) : type_(Type::kString), string_(value) {}

  // Empty containers, to be filled with push_back() / set().
  static Json array() { return Json(Type::kArray); }
  static Json array(Array items);
  static Json object() { return Json(Type::kObject); }

  // Parses a complete JSON text (surrounding whitespace allowed, nothing else after the value).
  // Throws Error "JSON parse error at byte N: expected ..., found ..." on any malformed input:
  // bad tokens, bad escapes, unpaired \uD800-\uDFFF surrogates, invalid UTF-8, raw control
  // characters in strings, numbers outside the RFC 8259 grammar or beyond double range, duplicate
  // object keys, nesting deeper than kMaxDepth, trailing garbage. Numbers too small for a double
  // (1e-400) round to zero rather than fail.
  static Json parse(std::string_view text);

  // Compact text with no whitespace. Members in insertion order. Numbers: integral values that fit
  // in int64 print without a decimal point ("3", "-0" for negative zero); others print the shortest
  // text that reads back to the same double ("0.1", "1e+300"); non-finite values, which JSON cannot
  // represent, print as null. Strings escape '"', '\\' and control characters; other UTF-8 is
  // copied as is.
  std::string dump() const;

  Type type() const { return type_; }
  bool is_null() const { return type_ == Type::kNull; }
  bool is_bool() const { return type_ == Type::kBool; }
  bool is_number() const { return type_ == Type::kNumber; }
  bool is_string() const { return type_ == Type::kString; }
  bool is_array() const { return type_ == Type::kArray; }
  bool is_object() const { return type_ == Type::kObject; }
  // A number with an integral value that fits in int64 (so as_int64() succeeds).
  bool is_integer() const;

  // Typed access; each throws Error "Json: expected <type>, found <type>" on a mismatch.
  bool as_bool() const;
  double as_number() const;
  // Throws Error also when the number is not integral or outside int64.
  int64_t as_int64() const;
  const std::string& as_string() const;
  const Array& as_array() const;
  const Object& as_object() const;

  // Object member by key; throws Error when this is not an object or the key is absent.
  const Json& operator[](std::string_view key) const;
  // Deleted so that j[0] does not silently turn 0 into a null key pointer: use at(i) for arrays.
  const Json& operator[](size_t) const = delete;
  // Object member by key, or nullptr when absent; throws Error when this is not an object.
  // Lookups scan the members (linear time); iterate as_object() to visit them all.
  const Json* find(std::string_view key) const;
  // False for non-objects.
  bool contains(std::string_view key) const;
  // Array element; throws Error when this is not an array or i is out of range.
  const Json& at(size_t i) const;
  // Number of elements (array) or members (object); throws Error for other types.
  size_t size() const;

  // Builders. push_back requires an array; set requires an object and replaces an existing key in
  // place (keeping its position) or appends a new one. Both return *this for chaining.
  Json& push_back(Json value);
  Json& set(std::string key, Json value);

  // Structural equality. Objects compare member by member in order; numbers compare exactly
  // (by int64 when both are exact integers, else as doubles).
  friend bool operator==(const Json& a, const Json& b);

  // "null", "bool", "number", "string", "array", "object".
  static std::string_view type_name(Type type);

 private:
  explicit Json(Type type) : type_(type) {}
  template <std::integral T>
  void set_integer(T value) {
    number_ = static_cast<double>(value);
    if constexpr (std::is_signed_v<T>) {
      integer_ = static_cast<int64_t>(value);
      exact_integer_ = true;
    } else if (static_cast<uint64_t>(value) <=
               static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      integer_ = static_cast<int64_t>(value);
      exact_integer_ = true;
    }
  }
  void expect(Type type) const;
  void dump_to(std::string& out) const;
  friend class JsonParser;

  Type type_ = Type::kNull;
  bool bool_ = false;
  bool exact_integer_ = false;  // integer_ holds the exact value of the number
  int64_t integer_ = 0;
  double number_ = 0.0;
  std::string string_;
  Array array_;
  Object object_;
};

}  // namespace bitgrad::core

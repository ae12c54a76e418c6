//===- JSON.cpp -----------------------------------------------------------===//
#include "mixtape/support/JSON.h"

#include "mixtape/support/Error.h"
#include "mixtape/support/Format.h"

#include "llvm/ADT/STLExtras.h"

#include <cmath>

void mixtape::walkJSONStructure(llvm::StringRef text,
                                llvm::function_ref<bool(size_t offset, char c, size_t depth)> visit) {
  size_t depth = 0;
  bool inString = false;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (inString) {
      if (c == '\\')
        ++i;
      else if (c == '"')
        inString = false;
      continue;
    }
    if (c == '"')
      inString = true;
    else if (c == '[' || c == '{')
      ++depth;
    else if ((c == ']' || c == '}') && depth > 0)
      --depth;
    if (!visit(i, c, depth))
      return;
  }
}

/// The byte where nesting first goes deeper than kMaxJSONDepth; npos if it never does.
static size_t tooDeepAt(llvm::StringRef text) {
  size_t at = llvm::StringRef::npos;
  mixtape::walkJSONStructure(text, [&](size_t i, char c, size_t depth) {
    if ((c == '[' || c == '{') && depth > mixtape::kMaxJSONDepth)
      at = i;
    return at == llvm::StringRef::npos;
  });
  return at;
}

llvm::Expected<llvm::json::Value> mixtape::parseJSON(llvm::StringRef text, const llvm::Twine &file, uint64_t base) {
  if (size_t at = tooDeepAt(text); at != llvm::StringRef::npos)
    return fileError(file, base + at, "JSON nested deeper than " + llvm::Twine(kMaxJSONDepth) + " levels");
  llvm::Expected<llvm::json::Value> value = llvm::json::parse(text);
  if (value)
    return value;
  // json::ParseError prints "[line:col, byte=N]: message"; restate it in our form.
  std::string message = llvm::toString(value.takeError());
  llvm::StringRef rest = message;
  uint64_t offset = 0;
  if (rest.consume_front("[") && rest.contains(", byte=")) {
    auto [number, tail] = rest.split(", byte=").second.split("]: ");
    if (!number.getAsInteger(10, offset))
      return fileError(file, base + offset, "invalid JSON: " + tail);
  }
  return fileError(file, "invalid JSON: " + message);
}

static void writeJSON(llvm::json::OStream &out, const llvm::json::Value &value) {
  switch (value.kind()) {
  case llvm::json::Value::Object: {
    const llvm::json::Object &object = *value.getAsObject();
    std::vector<llvm::StringRef> keys;
    for (const auto &entry : object)
      keys.push_back(entry.first);
    llvm::sort(keys);
    out.object([&] {
      for (llvm::StringRef key : keys)
        out.attributeBegin(key), writeJSON(out, *object.get(key)), out.attributeEnd();
    });
    return;
  }
  case llvm::json::Value::Array:
    out.array([&] {
      for (const llvm::json::Value &item : *value.getAsArray())
        writeJSON(out, item);
    });
    return;
  case llvm::json::Value::Number: {
    // Integers (and whole doubles) as they are; other doubles in their shortest spelling.
    if (value.getAsInteger() || value.getAsUINT64()) {
      out.value(value);
      return;
    }
    double d = *value.getAsNumber();
    if (std::isfinite(d))
      out.rawValue(mixtape::formatNumber(d));
    else
      out.value(nullptr);
    return;
  }
  default:
    out.value(value);
  }
}

std::string mixtape::formatJSON(const llvm::json::Value &value, unsigned indent) {
  std::string text;
  llvm::raw_string_ostream os(text);
  llvm::json::OStream out(os, indent);
  writeJSON(out, value);
  os << "\n";
  return text;
}

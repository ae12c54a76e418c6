//===- JSON.cpp -----------------------------------------------------------===//
#include "mixtape/support/JSON.h"

#include "mixtape/support/Error.h"

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

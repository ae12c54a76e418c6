//===- RecipeAST.cpp - TOML++ -> located values ---------------------------===//
#include "mixtape/compiler/RecipeAST.h"

#include "llvm/Support/ConvertUTF.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/SourceMgr.h"

#include <toml++/toml.h>

#include <cmath>

using namespace mixtape;

const Value *Value::get(llvm::StringRef key) const {
  const Field *f = field(key);
  return f ? f->value.get() : nullptr;
}

const Field *Value::field(llvm::StringRef key) const {
  if (kind != Table)
    return nullptr;
  for (const Field &f : fields)
    if (f.key == key)
      return &f;
  return nullptr;
}

llvm::StringRef mixtape::valueKindName(Value::Kind kind) {
  switch (kind) {
  case Value::String: return "string";
  case Value::Integer: return "integer";
  case Value::Float: return "float";
  case Value::Bool: return "boolean";
  case Value::Array: return "array";
  case Value::Table: return "table";
  case Value::Other: return "date/time";
  }
  return "value";
}

llvm::StringRef Value::kindName() const { return valueKindName(kind); }

namespace {

/// Converts TOML++ positions (line, column in code points) into pointers into the buffer.
class Locator {
public:
  Locator(const llvm::SourceMgr &sm, unsigned buffer) : sm(sm), buffer(buffer) {
    const llvm::MemoryBuffer *mb = sm.getMemoryBuffer(buffer);
    begin = mb->getBufferStart();
    end = mb->getBufferEnd();
    lineStarts.push_back(begin);
    for (const char *p = begin; p < end; ++p)
      if (*p == '\n')
        lineStarts.push_back(p + 1);
  }

  const char *pointer(toml::source_position pos) const {
    if (pos.line == 0 || pos.line > lineStarts.size())
      return end;
    const char *p = lineStarts[pos.line - 1];
    for (unsigned col = 1; col < pos.column && p < end && *p != '\n'; ++col) {
      ++p; // step over one code point: skip UTF-8 continuation bytes
      while (p < end && (static_cast<unsigned char>(*p) & 0xC0) == 0x80)
        ++p;
    }
    return p;
  }

  llvm::SMRange range(const toml::source_region &region) const {
    const char *b = pointer(region.begin);
    const char *e = region.end.line ? pointer(region.end) : b;
    if (e < b)
      e = b;
    return {llvm::SMLoc::getFromPointer(b), llvm::SMLoc::getFromPointer(e)};
  }

  const char *bufferEnd() const { return end; }

private:
  const llvm::SourceMgr &sm;
  unsigned buffer;
  const char *begin, *end;
  std::vector<const char *> lineStarts;
};

class Converter {
public:
  Converter(const Locator &loc, DiagnosticEngine &diags) : loc(loc), diags(diags) {}

  std::unique_ptr<Value> convert(const toml::node &node) {
    auto v = std::make_unique<Value>();
    v->range = loc.range(node.source());
    switch (node.type()) {
    case toml::node_type::string: {
      v->kind = Value::String;
      v->string = std::string(*node.as_string());
      v->stringLocation = StringLocation(v->range.Start.getPointer(), loc.bufferEnd());
      break;
    }
    case toml::node_type::integer:
      v->kind = Value::Integer;
      v->integer = node.as_integer()->get();
      v->stringLocation = StringLocation::whole(v->range);
      break;
    case toml::node_type::floating_point:
      v->kind = Value::Float;
      v->real = node.as_floating_point()->get();
      v->stringLocation = StringLocation::whole(v->range);
      if (!std::isfinite(v->real))
        diags.report(DiagCode::BadValue, v->range, "number is not finite");
      break;
    case toml::node_type::boolean:
      v->kind = Value::Bool;
      v->boolean = node.as_boolean()->get();
      v->stringLocation = StringLocation::whole(v->range);
      break;
    case toml::node_type::array:
      v->kind = Value::Array;
      v->stringLocation = StringLocation::whole(v->range);
      for (const toml::node &item : *node.as_array())
        v->items.push_back(convert(item));
      break;
    case toml::node_type::table: {
      v->kind = Value::Table;
      v->stringLocation = StringLocation::whole(v->range);
      const toml::table &table = *node.as_table();
      for (auto &&[key, child] : table) {
        Field f;
        f.key = std::string(key.str());
        f.keyRange = loc.range(key.source());
        f.value = convert(child);
        v->fields.push_back(std::move(f));
      }
      // toml::table is ordered by key; users expect source order (zip pairs, messages).
      std::stable_sort(v->fields.begin(), v->fields.end(), [](const Field &a, const Field &b) {
        return a.keyRange.Start.getPointer() < b.keyRange.Start.getPointer();
      });
      break;
    }
    default:
      v->kind = Value::Other;
      v->stringLocation = StringLocation::whole(v->range);
      break;
    }
    return v;
  }

private:
  const Locator &loc;
  DiagnosticEngine &diags;
};

} // namespace

static std::unique_ptr<Value> parseBuffer(unsigned bufferId, DiagnosticEngine &diags) {
  llvm::SourceMgr &sm = diags.sources();
  const llvm::MemoryBuffer *mb = sm.getMemoryBuffer(bufferId);
  llvm::StringRef text = mb->getBuffer();
  Locator loc(sm, bufferId);

  // TOML++ rejects these too, but with a message about a code point; say what it is.
  if (text.find('\0') != llvm::StringRef::npos) {
    size_t at = text.find('\0');
    diags.report(DiagCode::TomlSyntax, llvm::SMLoc::getFromPointer(text.data() + at),
                 "file contains a NUL byte: not a text recipe");
    return nullptr;
  }
  const llvm::UTF8 *bad = reinterpret_cast<const llvm::UTF8 *>(text.data());
  if (!llvm::isLegalUTF8String(&bad, reinterpret_cast<const llvm::UTF8 *>(text.end()))) {
    diags.report(DiagCode::TomlSyntax,
                 llvm::SMLoc::getFromPointer(reinterpret_cast<const char *>(bad)),
                 "invalid UTF-8: recipes are UTF-8 text");
    return nullptr;
  }

  toml::table table;
  try {
    table = toml::parse(std::string_view(text.data(), text.size()),
                        std::string_view(mb->getBufferIdentifier()));
  } catch (const toml::parse_error &err) {
    diags.report(DiagCode::TomlSyntax, loc.range(err.source()), std::string(err.description()));
    return nullptr;
  }
  Converter converter(loc, diags);
  auto root = converter.convert(table);
  root->range = llvm::SMRange(llvm::SMLoc::getFromPointer(text.begin()),
                              llvm::SMLoc::getFromPointer(text.begin()));
  return root;
}

std::unique_ptr<Value> mixtape::parseRecipeFile(llvm::StringRef path, DiagnosticEngine &diags) {
  if (llvm::sys::fs::is_directory(path)) {
    diags.reportFile(DiagCode::Io, path, "is a directory, not a recipe file");
    return nullptr;
  }
  auto buffer = llvm::MemoryBuffer::getFile(path, /*IsText=*/false, /*RequiresNullTerminator=*/false);
  if (!buffer) {
    diags.reportFile(DiagCode::Io, path, "cannot read: " + buffer.getError().message());
    return nullptr;
  }
  unsigned id = diags.sources().AddNewSourceBuffer(std::move(*buffer), llvm::SMLoc());
  return parseBuffer(id, diags);
}

std::unique_ptr<Value> mixtape::parseRecipeText(llvm::StringRef text, llvm::StringRef name,
                                                DiagnosticEngine &diags) {
  unsigned id = diags.sources().AddNewSourceBuffer(llvm::MemoryBuffer::getMemBufferCopy(text, name),
                                                   llvm::SMLoc());
  return parseBuffer(id, diags);
}

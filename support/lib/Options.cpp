//===- Options.cpp --------------------------------------------------------===//
#include "mixtape/support/Options.h"

#include "mixtape/support/Suggest.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/SmallVector.h"
#include "llvm/ADT/StringExtras.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>

using namespace mixtape;
using llvm::ArrayRef;
using llvm::StringRef;

/// Help wraps here: a fixed width keeps it the same on every terminal and in tests.
static constexpr size_t kWidth = 100;
/// Option names wider than this put their help on the next line instead of pushing every
/// help to the right.
static constexpr size_t kMaxNameWidth = 26;

static int reportUsageError(StringRef command, const llvm::Twine &message, llvm::raw_ostream &err) {
  err << command << ": " << message << "\nrun '" << command << " --help' for usage\n";
  return 2;
}

/// "; did you mean 'X'?" for the candidate closest to `typo` (closestMatch), "" when none
/// is. Leading dashes do not count, so that -out finds --out.
template <typename Names> static std::string didYouMean(StringRef typo, const Names &candidates) {
  std::vector<std::string> bare;
  for (StringRef candidate : candidates)
    bare.push_back(candidate.ltrim('-').str());
  StringRef word = typo.ltrim('-');
  auto exact = llvm::find(bare, word);
  std::optional<std::string> match = exact != bare.end() ? std::optional<std::string>(*exact) : closestMatch(word, bare);
  if (!match)
    return "";
  size_t i = llvm::find(bare, *match) - bare.begin();
  return ("; did you mean '" + StringRef(*std::next(std::begin(candidates), i)) + "'?").str();
}

/// Writes `text` from column `indent` on (the cursor is there), breaking lines between words
/// before kWidth; a newline in `text` starts a new line.
static void printWrapped(llvm::raw_ostream &os, StringRef text, size_t indent) {
  llvm::SmallVector<StringRef, 4> lines;
  text.split(lines, '\n');
  for (size_t l = 0; l < lines.size(); ++l) {
    if (l)
      os.indent(indent);
    size_t column = indent;
    llvm::SmallVector<StringRef, 16> words;
    llvm::SplitString(lines[l], words, " ");
    for (StringRef word : words) {
      if (column > indent && column + 1 + word.size() > kWidth) {
        os << '\n';
        os.indent(indent);
        column = indent;
      } else if (column > indent) {
        os << ' ';
        ++column;
      }
      os << word;
      column += word.size();
    }
    os << '\n';
  }
}

/// "  <name>  <help>", the help aligned at `column`, or on the next line when `name` is wider.
static void printRow(llvm::raw_ostream &os, StringRef name, StringRef help, size_t column) {
  os << "  " << name;
  if (2 + name.size() + 2 > column) {
    os << '\n';
    os.indent(column);
  } else {
    os.indent(column - 2 - name.size());
  }
  printWrapped(os, help, column);
}

static void printLines(llvm::raw_ostream &os, StringRef text) { os << text << (text.endswith("\n") ? "" : "\n"); }

/// The argument that asks a command for its option table instead of running it (Options.h).
static bool listsOptions(ArrayRef<StringRef> args) { return args.size() == 1 && args[0] == "--list-options"; }

//===----------------------------------------------------------------------===//
// OptionParser
//===----------------------------------------------------------------------===//

OptionParser::OptionParser(StringRef command, StringRef usage, StringRef summary)
    : Command(command), Usage(usage), Summary(summary) {
  flag("--help", HelpRequested, "print this help and exit").alias("-h");
}

OptionParser &OptionParser::add(StringRef name, StringRef meta, bool takesValue, StringRef help, StoreFn store) {
  assert(name.startswith("-") && name != "-" && name != "--" && !name.contains('=') && !find(name) &&
         "an option's name starts with a dash and is unique");
  Options.push_back({{name.str()}, meta.str(), help.str(), std::move(store), takesValue});
  return *this;
}

OptionParser &OptionParser::flag(StringRef name, bool &into, StringRef help) {
  return add(name, "", false, help, [&into](StringRef, StringRef) {
    into = true;
    return std::string();
  });
}

OptionParser &OptionParser::toggle(StringRef name, std::optional<bool> &into, StringRef help) {
  add(name, "", false, help, [&into, on = name.str()](StringRef spelling, StringRef) {
    into = spelling == on;
    return std::string();
  });
  return alias(("--no-" + name.ltrim('-')).str());
}

OptionParser &OptionParser::value(StringRef name, StringRef meta, std::string &into, StringRef help) {
  return add(name, meta, true, help, [&into](StringRef, StringRef value) {
    into = value.str();
    return std::string();
  });
}

OptionParser &OptionParser::value(StringRef name, StringRef meta, Handler handle, StringRef help) {
  return add(name, meta, true, help,
             [handle = std::move(handle)](StringRef, StringRef value) { return handle(value); });
}

OptionParser &OptionParser::list(StringRef name, StringRef meta, std::vector<std::string> &into, StringRef help) {
  return add(name, meta, true, help, [&into](StringRef, StringRef value) {
    into.push_back(value.str());
    return std::string();
  });
}

OptionParser &OptionParser::addInteger(StringRef name, StringRef meta, std::function<void(uint64_t)> store,
                                       uint64_t min, uint64_t max, StringRef help) {
  std::string wanted = max < std::numeric_limits<uint64_t>::max()
                           ? "an integer from " + std::to_string(min) + " to " + std::to_string(max)
                       : min ? "an integer of at least " + std::to_string(min)
                             : "a non-negative integer";
  return add(name, meta, true, help, [=](StringRef spelling, StringRef value) -> std::string {
    uint64_t n;
    if (value.getAsInteger(10, n) || n < min || n > max)
      return (spelling + " needs " + wanted + ", not '" + value + "'").str();
    store(n);
    return "";
  });
}

OptionParser &OptionParser::number(StringRef name, StringRef meta, double &into, StringRef help, NumberCheck check) {
  return add(name, meta, true, help, [&into, check](StringRef spelling, StringRef value) -> std::string {
    double x;
    if (value.getAsDouble(x) || !std::isfinite(x) || (check == Positive && x <= 0))
      return (spelling + " needs a " + (check == Positive ? "positive " : "") + "number, not '" + value + "'").str();
    into = x;
    return "";
  });
}

OptionParser &OptionParser::choice(StringRef name, ArrayRef<StringRef> choices, std::string &into, StringRef help) {
  std::string meta = llvm::join(choices, "|");
  std::vector<std::string> allowed(choices.begin(), choices.end());
  return add(name, meta, true, help, [&into, meta, allowed](StringRef spelling, StringRef value) -> std::string {
    if (!llvm::is_contained(allowed, value))
      return (spelling + " needs one of " + meta + ", not '" + value + "'" + didYouMean(value, allowed)).str();
    into = value.str();
    return "";
  });
}

OptionParser &OptionParser::prefixed(StringRef prefix, StringRef meta, Handler handle, StringRef help) {
  add(prefix, meta, false, help, [handle = std::move(handle)](StringRef, StringRef rest) { return handle(rest); });
  Options.back().Prefixed = true;
  return *this;
}

OptionParser &OptionParser::alias(StringRef name) {
  assert(!Options.empty() && name.startswith("-") && !find(name) && "an alias of a declared option");
  Options.back().Names.push_back(name.str());
  return *this;
}

OptionParser &OptionParser::required() {
  Options.back().Required = true;
  return *this;
}

OptionParser &OptionParser::positional(StringRef meta, std::vector<std::string> &into, size_t min, size_t max) {
  assert(!Positional && min <= max && "positional() once per parser");
  PositionalMeta = meta.str();
  Positional = &into;
  MinPositional = min;
  MaxPositional = max;
  return *this;
}

OptionParser &OptionParser::epilog(StringRef text) {
  Epilog = text.str();
  return *this;
}

OptionParser::Option *OptionParser::find(StringRef name) {
  for (Option &option : Options)
    if (!option.Prefixed && llvm::is_contained(option.Names, name))
      return &option;
  return nullptr;
}

std::optional<int> OptionParser::parse(ArrayRef<StringRef> args, llvm::raw_ostream &out, llvm::raw_ostream &err) {
  if (listsOptions(args)) {
    listOptions(out);
    return 0;
  }
  HelpRequested = false;
  for (Option &option : Options)
    option.Seen = false;
  std::vector<std::string> positionals;
  std::string error; // the first; parsing goes on to find a later --help, which wins
  auto fail = [&](const llvm::Twine &message) {
    if (error.empty())
      error = message.str();
  };
  bool optionsEnded = false;
  for (size_t i = 0; i < args.size(); ++i) {
    StringRef arg = args[i];
    if (optionsEnded || arg == "-" || !arg.startswith("-")) {
      positionals.push_back(arg.str());
      continue;
    }
    if (arg == "--") {
      optionsEnded = true;
      continue;
    }
    auto [name, value] = arg.split('=');
    bool inlineValue = name.size() < arg.size();
    Option *option = find(name);
    if (option && option->TakesValue && !inlineValue) {
      if (i + 1 == args.size()) {
        fail(name + " needs a value (" + option->Meta + ")");
        break;
      }
      value = args[++i];
    } else if (option && !option->TakesValue && inlineValue) {
      fail(name + " does not take a value");
      continue;
    } else if (!option) {
      auto prefixed = llvm::find_if(Options, [&](const Option &o) { return o.Prefixed && arg.startswith(o.Names[0]); });
      if (prefixed == Options.end()) {
        std::vector<StringRef> names;
        for (const Option &o : Options)
          if (!o.Prefixed)
            names.insert(names.end(), o.Names.begin(), o.Names.end());
        fail("unknown option '" + name + "'" + didYouMean(name, names));
        continue;
      }
      option = &*prefixed;
      name = arg;
      value = arg.drop_front(option->Names[0].size());
    }
    option->Seen = true;
    if (std::string message = option->Store(name, value); !message.empty())
      fail(message);
  }
  if (HelpRequested) {
    printHelp(out);
    return 0;
  }
  for (const Option &option : Options)
    if (option.Required && !option.Seen)
      fail("missing " + option.Names[0] + (option.Meta.empty() ? "" : " " + option.Meta));
  if (positionals.size() > MaxPositional)
    fail("unexpected argument '" + positionals[MaxPositional] + "'" +
         (MaxPositional ? "; expected " + expectedPositionals() : ""));
  else if (positionals.size() < MinPositional)
    fail("expected " + expectedPositionals() + ", got " + llvm::Twine(positionals.size()));
  if (!error.empty())
    return usageError(error, err);
  if (Positional)
    *Positional = std::move(positionals);
  return std::nullopt;
}

/// "1 argument (RECIPE)", "at least 1 argument (RECIPE...)", "2 to 3 arguments (...)".
std::string OptionParser::expectedPositionals() const {
  std::string min = std::to_string(MinPositional), max = std::to_string(MaxPositional);
  std::string count = MinPositional == MaxPositional ? min
                      : MaxPositional == Unlimited   ? "at least " + min
                      : MinPositional == 0           ? "at most " + max
                                                     : min + " to " + max;
  bool one = (MaxPositional == Unlimited ? MinPositional : MaxPositional) == 1;
  return count + (one ? " argument (" : " arguments (") + PositionalMeta + ")";
}

int OptionParser::usageError(const llvm::Twine &message, llvm::raw_ostream &err) const {
  return reportUsageError(Command, message, err);
}

void OptionParser::printHelp(llvm::raw_ostream &os) const {
  os << "usage: " << Command << " [options]" << (Usage.empty() ? "" : " ") << Usage << "\n";
  if (!Summary.empty())
    printLines(os, Summary);
  std::vector<std::string> names;
  size_t width = 0;
  for (const Option &option : Options) {
    std::vector<std::string> spellings = option.Names; // short ones first: "-o, --out FILE"
    std::stable_partition(spellings.begin(), spellings.end(), [](StringRef s) { return !s.startswith("--"); });
    std::string name = llvm::join(spellings, ", ");
    if (!option.Meta.empty())
      name += (option.Prefixed ? "" : " ") + option.Meta;
    if (name.size() <= kMaxNameWidth)
      width = std::max(width, name.size());
    names.push_back(std::move(name));
  }
  os << "\noptions:\n";
  for (size_t i = 0; i < Options.size(); ++i)
    printRow(os, names[i], Options[i].Help, 2 + width + 2);
  if (!Epilog.empty()) {
    os << "\n";
    printLines(os, Epilog);
  }
}

void OptionParser::listOptions(llvm::raw_ostream &os) const {
  for (const Option &option : Options) {
    StringRef kind = option.Prefixed ? "prefix" : option.TakesValue ? "value" : "flag";
    os << kind << '\t' << llvm::join(option.Names, " ");
    if (!option.Meta.empty())
      os << '\t' << option.Meta;
    os << '\n';
  }
  if (Positional)
    os << "operand\t" << PositionalMeta << '\n';
}

//===----------------------------------------------------------------------===//
// CommandTable
//===----------------------------------------------------------------------===//

CommandTable::CommandTable(StringRef command, StringRef summary, ArrayRef<Subcommand> commands)
    : Command(command), Summary(summary), Commands(commands.begin(), commands.end()) {}

CommandTable &CommandTable::version(StringRef text) {
  Version = text.str();
  return *this;
}

int CommandTable::dispatch(ArrayRef<StringRef> args, llvm::raw_ostream &out, llvm::raw_ostream &err) const {
  if (args.empty()) {
    printHelp(err);
    return 2;
  }
  if (listsOptions(args)) {
    listOptions(out);
    return 0;
  }
  StringRef name = args[0];
  if (name == "--help" || name == "-h" || name == "help") {
    printHelp(out);
    return 0;
  }
  if (name == "--version" && !Version.empty()) {
    out << Version << "\n";
    return 0;
  }
  for (const Subcommand &command : Commands)
    if (command.Name == name)
      return command.Run(args.drop_front());
  std::vector<StringRef> names;
  for (const Subcommand &command : Commands)
    names.push_back(command.Name);
  if (!name.startswith("-"))
    return reportUsageError(Command, "unknown command '" + name + "'" + didYouMean(name, names), err);
  // A mistyped option is matched against this table's options first (--verison), then
  // against its commands (--lint).
  std::vector<StringRef> options = {"--help", "-h"};
  if (!Version.empty())
    options.push_back("--version");
  std::string suggestion = didYouMean(name, options);
  if (suggestion.empty())
    suggestion = didYouMean(name, names);
  return reportUsageError(Command, "unknown option '" + name + "'" + suggestion, err);
}

void CommandTable::printHelp(llvm::raw_ostream &os) const {
  os << "usage: " << Command << (Version.empty() ? "" : " [--version]") << " <command> [args]\n";
  if (!Summary.empty())
    printLines(os, Summary);
  size_t width = 0;
  for (const Subcommand &command : Commands)
    width = std::max(width, command.Name.size());
  os << "\ncommands:\n";
  for (const Subcommand &command : Commands)
    printRow(os, command.Name, command.Summary, 2 + width + 2);
  os << "\nrun '" << Command << " <command> --help' for a command's options\n";
}

void CommandTable::listOptions(llvm::raw_ostream &os) const {
  for (const Subcommand &command : Commands)
    os << "command\t" << command.Name << '\n';
  os << "flag\t--help -h\n";
  if (!Version.empty())
    os << "flag\t--version\n";
}

bool mixtape::useColor(const llvm::raw_ostream &os, std::optional<bool> forced) {
  if (forced)
    return *forced;
  const char *noColor = std::getenv("NO_COLOR");
  if (noColor && *noColor)
    return false;
  return os.is_displayed();
}

#include "mixtape/support/Options.h"

#include "llvm/ADT/StringExtras.h"

#include <gtest/gtest.h>

#include <cstdlib>

using namespace mixtape;
using llvm::StringRef;

namespace {

/// What one parse() did: its result and what it printed.
struct Outcome {
  std::optional<int> Exit;
  std::string Out, Err;
};

Outcome parse(OptionParser &parser, std::vector<StringRef> args) {
  Outcome outcome;
  llvm::raw_string_ostream out(outcome.Out), err(outcome.Err);
  outcome.Exit = parser.parse(args, out, err);
  out.flush();
  err.flush();
  return outcome;
}

/// The usage error parse() prints for `message`.
std::string usageError(StringRef command, StringRef message) {
  return (command + ": " + message + "\nrun '" + command + " --help' for usage\n").str();
}

/// A stream that says it is a terminal, as llvm::errs() does on one.
class TerminalStream : public llvm::raw_ostream {
  void write_impl(const char *, size_t) override {}
  uint64_t current_pos() const override { return 0; }
  bool is_displayed() const override { return true; }
};

} // namespace

TEST(Options, ValueBothSpellings) {
  std::string out = "default", dot;
  OptionParser parser("mixtape plan", "", "");
  parser.value("--out", "FILE", out, "").value("--dot", "FILE", dot, "");
  EXPECT_EQ(out, "default");
  Outcome r = parse(parser, {"--out", "a.json", "--dot=g.dot"});
  EXPECT_EQ(r.Exit, std::nullopt);
  EXPECT_EQ(r.Err, "");
  EXPECT_EQ(out, "a.json");
  EXPECT_EQ(dot, "g.dot");
  // Only the first '=' separates; an empty value after '=' is a value.
  EXPECT_EQ(parse(parser, {"--out=a=b", "--dot="}).Exit, std::nullopt);
  EXPECT_EQ(out, "a=b");
  EXPECT_EQ(dot, "");
  // The next argument is the value even when it looks like an option.
  EXPECT_EQ(parse(parser, {"--out", "--dot"}).Exit, std::nullopt);
  EXPECT_EQ(out, "--dot");
}

TEST(Options, RepeatedOptionLastWins) {
  std::string out;
  OptionParser parser("mixtape plan", "", "");
  parser.value("--out", "FILE", out, "");
  EXPECT_EQ(parse(parser, {"--out", "a", "--out=b"}).Exit, std::nullopt);
  EXPECT_EQ(out, "b");
}

TEST(Options, Flags) {
  bool verify = false, werror = false;
  OptionParser parser("mixtape lint", "", "");
  parser.flag("--verify", verify, "").flag("-Werror", werror, "");
  EXPECT_EQ(parse(parser, {"-Werror"}).Exit, std::nullopt);
  EXPECT_FALSE(verify);
  EXPECT_TRUE(werror);
  Outcome r = parse(parser, {"--verify=yes"});
  EXPECT_EQ(r.Exit, 2);
  EXPECT_EQ(r.Err, usageError("mixtape lint", "--verify does not take a value"));
}

TEST(Options, AliasesAndToggle) {
  std::string out;
  std::optional<bool> color;
  OptionParser parser("mixtape plan", "", "");
  parser.value("--out", "FILE", out, "").alias("-o").toggle("--color", color, "");
  EXPECT_EQ(parse(parser, {"-o", "x"}).Exit, std::nullopt);
  EXPECT_EQ(out, "x");
  EXPECT_EQ(color, std::nullopt);
  EXPECT_EQ(parse(parser, {"-o=y", "--color"}).Exit, std::nullopt);
  EXPECT_EQ(out, "y");
  EXPECT_EQ(color, true);
  EXPECT_EQ(parse(parser, {"--color", "--no-color"}).Exit, std::nullopt);
  EXPECT_EQ(color, false);
}

TEST(Options, ListAccumulates) {
  std::vector<std::string> nodes;
  OptionParser parser("mixtape run", "", "");
  parser.list("--node", "NAME", nodes, "");
  EXPECT_EQ(parse(parser, {"--node", "a", "--node=b", "--node", "a"}).Exit, std::nullopt);
  EXPECT_EQ(nodes, (std::vector<std::string>{"a", "b", "a"}));
}

TEST(Options, IntegerRange) {
  int nproc = 1;
  uint64_t seed = 7;
  OptionParser parser("mixtape run", "", "");
  parser.integer("--nproc", "N", nproc, 1, 1024, "")
      .integer("--seed", "S", seed, 0, std::numeric_limits<uint64_t>::max(), "");
  EXPECT_EQ(parse(parser, {"--nproc", "1024", "--seed=18446744073709551615"}).Exit, std::nullopt);
  EXPECT_EQ(nproc, 1024);
  EXPECT_EQ(seed, std::numeric_limits<uint64_t>::max());
  for (StringRef bad : {"0", "1025", "x", "-1", "", "1.5", "0x10"}) {
    Outcome r = parse(parser, {"--nproc=" + bad.str()});
    EXPECT_EQ(r.Exit, 2) << bad.str();
    EXPECT_EQ(r.Err, usageError("mixtape run", ("--nproc needs an integer from 1 to 1024, not '" + bad + "'").str()));
  }
  EXPECT_EQ(nproc, 1024); // untouched by the bad ones
  EXPECT_EQ(parse(parser, {"--seed", "-1"}).Err,
            usageError("mixtape run", "--seed needs a non-negative integer, not '-1'"));
}

TEST(Options, Numbers) {
  double t = 0.5, mfu = 0.4;
  OptionParser parser("mixtape merge", "", "");
  parser.number("--t", "T", t, "").number("--mfu", "X", mfu, "", OptionParser::Positive);
  EXPECT_EQ(parse(parser, {"--t", "-0.25", "--mfu=1e-3"}).Exit, std::nullopt);
  EXPECT_EQ(t, -0.25);
  EXPECT_EQ(mfu, 1e-3);
  for (StringRef bad : {"x", "inf", "nan", "1e999", ""})
    EXPECT_EQ(parse(parser, {"--t=" + bad.str()}).Err,
              usageError("mixtape merge", ("--t needs a number, not '" + bad + "'").str()));
  EXPECT_EQ(parse(parser, {"--mfu", "0"}).Err, usageError("mixtape merge", "--mfu needs a positive number, not '0'"));
  EXPECT_EQ(t, -0.25);
  EXPECT_EQ(mfu, 1e-3);
}

TEST(Options, ValueHandler) {
  std::vector<double> weights;
  OptionParser parser("mixtape merge", "", "");
  auto parseWeights = [&](StringRef list) -> std::string {
    llvm::SmallVector<StringRef, 4> parts;
    list.split(parts, ',');
    for (StringRef part : parts) {
      double w;
      if (part.getAsDouble(w))
        return ("--weights: '" + part + "' is not a number").str();
      weights.push_back(w);
    }
    return "";
  };
  parser.value("--weights", "W1,W2,...", parseWeights, "");
  EXPECT_EQ(parse(parser, {"--weights=0.25,0.75"}).Exit, std::nullopt);
  EXPECT_EQ(weights, (std::vector<double>{0.25, 0.75}));
  EXPECT_EQ(parse(parser, {"--weights", "1,x"}).Err, usageError("mixtape merge", "--weights: 'x' is not a number"));
}

TEST(Options, ChoiceListsTheChoices) {
  std::string format = "text";
  OptionParser parser("mixtape lint", "", "");
  parser.choice("--format", {"text", "json"}, format, "");
  EXPECT_EQ(parse(parser, {"--format=json"}).Exit, std::nullopt);
  EXPECT_EQ(format, "json");
  Outcome r = parse(parser, {"--format", "xml"});
  EXPECT_EQ(r.Exit, 2);
  EXPECT_EQ(r.Err, usageError("mixtape lint", "--format needs one of text|json, not 'xml'"));
  EXPECT_EQ(parse(parser, {"--format", "jsn"}).Err,
            usageError("mixtape lint", "--format needs one of text|json, not 'jsn'; did you mean 'json'?"));
  EXPECT_EQ(format, "json");
}

TEST(Options, Prefixed) {
  std::vector<std::string> disabled;
  bool werror = false;
  OptionParser parser("mixtape lint", "", "");
  auto disable = [&](StringRef code) -> std::string {
    if (code != "rewarm-no-replay" && code != "a=b")
      return ("'" + code + "' is not a warning code").str();
    disabled.push_back(code.str());
    return "";
  };
  parser.flag("-Werror", werror, "").prefixed("-Wno-", "<code>", disable, "");
  EXPECT_EQ(parse(parser, {"-Wno-rewarm-no-replay", "-Werror", "-Wno-a=b"}).Exit, std::nullopt);
  EXPECT_TRUE(werror);
  EXPECT_EQ(disabled, (std::vector<std::string>{"rewarm-no-replay", "a=b"}));
  Outcome r = parse(parser, {"-Wno-bogus"});
  EXPECT_EQ(r.Exit, 2);
  EXPECT_EQ(r.Err, usageError("mixtape lint", "'bogus' is not a warning code"));
}

TEST(Options, UnknownOption) {
  std::string out;
  bool quiet = false;
  OptionParser parser("mixtape plan", "", "");
  parser.value("--out", "FILE", out, "").flag("--quiet", quiet, "");
  Outcome r = parse(parser, {"--ouut", "x"});
  EXPECT_EQ(r.Exit, 2);
  EXPECT_EQ(r.Out, "");
  EXPECT_EQ(r.Err, usageError("mixtape plan", "unknown option '--ouut'; did you mean '--out'?"));
  // The name only, not its value; one dash too few still finds it.
  EXPECT_EQ(parse(parser, {"--quite=1"}).Err,
            usageError("mixtape plan", "unknown option '--quite'; did you mean '--quiet'?"));
  EXPECT_EQ(parse(parser, {"-out"}).Err, usageError("mixtape plan", "unknown option '-out'; did you mean '--out'?"));
  // Nothing close: no guess.
  EXPECT_EQ(parse(parser, {"--verbose"}).Err, usageError("mixtape plan", "unknown option '--verbose'"));
  EXPECT_EQ(parse(parser, {"-x"}).Err, usageError("mixtape plan", "unknown option '-x'"));
}

TEST(Options, MissingValueAtTheEnd) {
  std::string out;
  std::vector<std::string> files;
  OptionParser parser("mixtape plan", "RECIPE", "");
  parser.value("--out", "FILE", out, "").positional("RECIPE", files, 0, 1);
  Outcome r = parse(parser, {"r.toml", "--out"});
  EXPECT_EQ(r.Exit, 2);
  EXPECT_EQ(r.Err, usageError("mixtape plan", "--out needs a value (FILE)"));
}

TEST(Options, DoubleDashAndDash) {
  bool quiet = false;
  std::vector<std::string> files;
  OptionParser parser("mixtape lint", "RECIPE...", "");
  parser.flag("--quiet", quiet, "").positional("RECIPE...", files, 0, OptionParser::Unlimited);
  EXPECT_EQ(parse(parser, {"-", "a", "--", "--quiet", "-x", "-"}).Exit, std::nullopt);
  EXPECT_FALSE(quiet);
  EXPECT_EQ(files, (std::vector<std::string>{"-", "a", "--quiet", "-x", "-"}));
}

TEST(Options, PositionalCounts) {
  std::vector<std::string> args;
  OptionParser exact("mixtape export", "RUN_DIR NODE", "");
  exact.positional("RUN_DIR NODE", args, 2, 2);
  EXPECT_EQ(parse(exact, {"runs/a", "base"}).Exit, std::nullopt);
  EXPECT_EQ(args, (std::vector<std::string>{"runs/a", "base"}));
  EXPECT_EQ(parse(exact, {"runs/a"}).Err, usageError("mixtape export", "expected 2 arguments (RUN_DIR NODE), got 1"));
  Outcome r = parse(exact, {"a", "b", "c"});
  EXPECT_EQ(r.Exit, 2);
  EXPECT_EQ(r.Err, usageError("mixtape export", "unexpected argument 'c'; expected 2 arguments (RUN_DIR NODE)"));

  OptionParser some("mixtape lint", "RECIPE...", "");
  some.positional("RECIPE...", args, 1, OptionParser::Unlimited);
  EXPECT_EQ(parse(some, {}).Err, usageError("mixtape lint", "expected at least 1 argument (RECIPE...), got 0"));
  EXPECT_EQ(parse(some, {"a", "b", "c"}).Exit, std::nullopt);
  EXPECT_EQ(args.size(), 3u);

  OptionParser optional("mixtape x", "[DIR]", "");
  optional.positional("DIR", args, 0, 1);
  EXPECT_EQ(parse(optional, {"a", "b"}).Err,
            usageError("mixtape x", "unexpected argument 'b'; expected at most 1 argument (DIR)"));

  OptionParser none("mixtape data synth", "", "");
  EXPECT_EQ(parse(none, {"stray"}).Err, usageError("mixtape data synth", "unexpected argument 'stray'"));
}

TEST(Options, Required) {
  std::string out;
  bool slurm = false;
  OptionParser parser("mixtape merge", "", "");
  parser.value("--out", "OUT", out, "").required().flag("--slurm", slurm, "").required();
  EXPECT_EQ(parse(parser, {"--slurm"}).Err, usageError("mixtape merge", "missing --out OUT"));
  EXPECT_EQ(parse(parser, {"--out=o"}).Err, usageError("mixtape merge", "missing --slurm"));
  EXPECT_EQ(parse(parser, {"--slurm", "--out=o"}).Exit, std::nullopt);
}

TEST(Options, FirstErrorIsReported) {
  std::string out;
  OptionParser parser("mixtape plan", "", "");
  parser.value("--out", "FILE", out, "");
  EXPECT_EQ(parse(parser, {"--bad", "stray", "--out"}).Err, usageError("mixtape plan", "unknown option '--bad'"));
}

TEST(Options, UsageErrorAfterParsing) {
  OptionParser parser("mixtape submit", "RECIPE", "");
  std::string err;
  llvm::raw_string_ostream os(err);
  EXPECT_EQ(parser.usageError("--out only goes with --dry-run", os), 2);
  EXPECT_EQ(os.str(), usageError("mixtape submit", "--out only goes with --dry-run"));
}

TEST(Options, Help) {
  std::string out, format = "text";
  bool werror = false;
  int nproc = 1;
  std::vector<std::string> files;
  OptionParser parser("mixtape lint", "RECIPE...", "check recipes and report every problem");
  parser.value("--out", "FILE", out, "write the report to FILE")
      .alias("-o")
      .flag("-Werror", werror, "treat warnings as errors")
      .choice("--format", {"text", "json"}, format, "diagnostics as text or JSON")
      .integer("--nproc", "N", nproc, 1, 8, "processes")
      .prefixed("-Wno-", "<code>", OptionParser::Handler([](StringRef) { return ""; }), "silence a warning")
      .positional("RECIPE...", files, 1, OptionParser::Unlimited)
      .epilog("exit status: 0 clean, 1 errors, 2 usage");
  // Help wins over the missing RECIPE and over an earlier unknown option.
  for (std::vector<StringRef> args : std::vector<std::vector<StringRef>>{{"--help"}, {"-h"}, {"--bogus", "-h"}}) {
    Outcome r = parse(parser, args);
    EXPECT_EQ(r.Exit, 0);
    EXPECT_EQ(r.Err, "");
    EXPECT_EQ(r.Out, "usage: mixtape lint [options] RECIPE...\n"
                     "check recipes and report every problem\n"
                     "\n"
                     "options:\n"
                     "  -h, --help          print this help and exit\n"
                     "  -o, --out FILE      write the report to FILE\n"
                     "  -Werror             treat warnings as errors\n"
                     "  --format text|json  diagnostics as text or JSON\n"
                     "  --nproc N           processes\n"
                     "  -Wno-<code>         silence a warning\n"
                     "\n"
                     "exit status: 0 clean, 1 errors, 2 usage\n");
  }
  // A value that happens to be "--help" is a value.
  EXPECT_EQ(parse(parser, {"--out", "--help", "a.toml"}).Exit, std::nullopt);
  EXPECT_EQ(out, "--help");
}

TEST(Options, HelpWraps) {
  std::string dir, aVeryLongOptionName;
  OptionParser parser("mixtape plan", "RECIPE", "");
  std::string words;
  for (int i = 0; i < 40; ++i)
    words += "word" + std::to_string(i) + " ";
  parser.value("--run-dir", "DIR", dir, words + "\nlast line")
      .value("--a-very-long-option-name", "VALUE", aVeryLongOptionName, "short");
  std::string help;
  llvm::raw_string_ostream os(help);
  parser.printHelp(os);
  llvm::SmallVector<StringRef, 16> lines;
  StringRef(os.str()).split(lines, '\n');
  size_t runDir = 0;
  while (runDir < lines.size() && !lines[runDir].startswith("  --run-dir DIR"))
    ++runDir;
  ASSERT_LT(runDir + 6, lines.size());
  for (StringRef line : lines)
    EXPECT_LE(line.size(), 100u) << line.str();
  // Continuations align with the help column (2 + "--run-dir DIR" + 2); the newline in the
  // help starts a line; a name wider than the column puts its help on the next line.
  EXPECT_TRUE(lines[runDir].startswith("  --run-dir DIR  word0 word1 ")) << lines[runDir].str();
  EXPECT_TRUE(lines[runDir + 1].startswith(std::string(17, ' ') + "word")) << lines[runDir + 1].str();
  EXPECT_TRUE(llvm::is_contained(lines, std::string(17, ' ') + "last line"));
  EXPECT_TRUE(llvm::is_contained(lines, "  --a-very-long-option-name VALUE"));
  EXPECT_TRUE(llvm::is_contained(lines, std::string(17, ' ') + "short"));
}

namespace {
std::vector<std::string> Received;
int lintStub(llvm::ArrayRef<StringRef> args) {
  Received.assign(args.begin(), args.end());
  return 7;
}
int planStub(llvm::ArrayRef<StringRef>) { return 3; }
const Subcommand kCommands[] = {
    {"lint", "check recipes", lintStub},
    {"plan", "lower a recipe to its execution graph", planStub},
};

Outcome dispatch(const CommandTable &table, std::vector<StringRef> args) {
  Outcome outcome;
  llvm::raw_string_ostream out(outcome.Out), err(outcome.Err);
  outcome.Exit = table.dispatch(args, out, err);
  out.flush();
  err.flush();
  return outcome;
}
} // namespace

TEST(Options, SubcommandDispatch) {
  CommandTable table = CommandTable("mixtape", "recipes for continual pre-training", kCommands).version("mixtape 1.2");
  Received.clear();
  Outcome r = dispatch(table, {"lint", "-Werror", "a.toml"});
  EXPECT_EQ(r.Exit, 7);
  EXPECT_EQ(Received, (std::vector<std::string>{"-Werror", "a.toml"}));
  EXPECT_EQ(dispatch(table, {"plan"}).Exit, 3);

  r = dispatch(table, {"lnit", "a.toml"});
  EXPECT_EQ(r.Exit, 2);
  EXPECT_EQ(r.Out, "");
  EXPECT_EQ(r.Err, usageError("mixtape", "unknown command 'lnit'; did you mean 'lint'?"));
  EXPECT_EQ(dispatch(table, {"deploy"}).Err, usageError("mixtape", "unknown command 'deploy'"));
  EXPECT_EQ(dispatch(table, {"--verbose"}).Err, usageError("mixtape", "unknown option '--verbose'"));
  // A mistyped option is matched against the table's options, then its commands.
  EXPECT_EQ(dispatch(table, {"--verison"}).Err,
            usageError("mixtape", "unknown option '--verison'; did you mean '--version'?"));
  EXPECT_EQ(dispatch(table, {"--hlep"}).Err, usageError("mixtape", "unknown option '--hlep'; did you mean '--help'?"));
  EXPECT_EQ(dispatch(table, {"--lint"}).Err, usageError("mixtape", "unknown option '--lint'; did you mean 'lint'?"));

  const char *help = "usage: mixtape [--version] <command> [args]\n"
                     "recipes for continual pre-training\n"
                     "\n"
                     "commands:\n"
                     "  lint  check recipes\n"
                     "  plan  lower a recipe to its execution graph\n"
                     "\n"
                     "run 'mixtape <command> --help' for a command's options\n";
  for (StringRef ask : {"--help", "-h", "help"}) {
    r = dispatch(table, {ask});
    EXPECT_EQ(r.Exit, 0);
    EXPECT_EQ(r.Out, help);
    EXPECT_EQ(r.Err, "");
  }
  r = dispatch(table, {});
  EXPECT_EQ(r.Exit, 2);
  EXPECT_EQ(r.Err, help);
  r = dispatch(table, {"--version"});
  EXPECT_EQ(r.Exit, 0);
  EXPECT_EQ(r.Out, "mixtape 1.2\n");
  // Without a version, --version is an unknown option like any other.
  CommandTable data("mixtape data", "", kCommands);
  EXPECT_EQ(dispatch(data, {"--version"}).Err, usageError("mixtape data", "unknown option '--version'"));
}

// `--list-options` alone prints the table shell completion is generated from (Options.h);
// anywhere else it is an unknown option like any other.
TEST(Options, ListOptions) {
  std::string out, format;
  std::optional<bool> color;
  std::vector<std::string> recipes;
  bool werror = false;
  OptionParser parser("mixtape lint", "RECIPE...", "");
  parser.value("--out", "FILE", out, "")
      .alias("-o")
      .choice("--format", {"text", "json"}, format, "")
      .flag("-Werror", werror, "")
      .prefixed("-Wno-", "<code>", [](StringRef) { return std::string(); }, "")
      .toggle("--color", color, "")
      .positional("RECIPE...", recipes, 1, OptionParser::Unlimited);
  Outcome r = parse(parser, {"--list-options"});
  EXPECT_EQ(r.Exit, 0);
  EXPECT_EQ(r.Out, "flag\t--help -h\n"
                   "value\t--out -o\tFILE\n"
                   "value\t--format\ttext|json\n"
                   "flag\t-Werror\n"
                   "prefix\t-Wno-\t<code>\n"
                   "flag\t--color --no-color\n"
                   "operand\tRECIPE...\n");
  EXPECT_EQ(r.Err, "");
  EXPECT_EQ(parse(parser, {"a.toml", "--list-options"}).Exit, 2);

  CommandTable table = CommandTable("mixtape", "", kCommands).version("mixtape 1.2");
  r = dispatch(table, {"--list-options"});
  EXPECT_EQ(r.Exit, 0);
  EXPECT_EQ(r.Out, "command\tlint\ncommand\tplan\nflag\t--help -h\nflag\t--version\n");
  Received.clear();
  EXPECT_EQ(dispatch(table, {"lint", "--list-options"}).Exit, 7); // the subcommand's to answer
  EXPECT_EQ(Received, (std::vector<std::string>{"--list-options"}));
}

TEST(Options, NoColor) {
  TerminalStream terminal;
  std::string text;
  llvm::raw_string_ostream file(text);
  const char *saved = std::getenv("NO_COLOR");
  std::string savedValue = saved ? saved : "";

  unsetenv("NO_COLOR");
  EXPECT_TRUE(useColor(terminal, std::nullopt));
  EXPECT_FALSE(useColor(file, std::nullopt));
  EXPECT_TRUE(useColor(file, true));
  EXPECT_FALSE(useColor(terminal, false));

  setenv("NO_COLOR", "1", 1);
  EXPECT_FALSE(useColor(terminal, std::nullopt));
  EXPECT_TRUE(useColor(terminal, true)); // --color still wins
  setenv("NO_COLOR", "", 1);             // set but empty: ignored
  EXPECT_TRUE(useColor(terminal, std::nullopt));

  if (saved)
    setenv("NO_COLOR", savedValue.c_str(), 1);
  else
    unsetenv("NO_COLOR");
}

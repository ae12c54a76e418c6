//===- EditorCommands.cpp - `mixtape schema` and `mixtape completion` -----===//
//
// What editors and shells read: the JSON schema of recipes (from grammar/keys.def, through
// the compiler's Schema.h) and bash/zsh completion generated from the option tables. The
// tables are the commands' own: each command, run with `--list-options`, prints the table
// its OptionParser or CommandTable holds (Options.h). They are asked in child processes
// because run, exec, export and merge live in `mixtape-runtime`.
//
//===----------------------------------------------------------------------===//
#include "Commands.h"

#include "mixtape/compiler/Schema.h"
#include "mixtape/support/Files.h"
#include "mixtape/support/Options.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/raw_ostream.h"

using namespace mixtape;

namespace {

/// One command's table, as `--list-options` printed it.
struct CommandSpec {
  std::string Path; ///< the words after `mixtape`: "", "data", "data prepare"
  std::vector<std::string> Subcommands;
  /// Every spelling of an option that takes a value, with its meta ("DIR", "cached|full").
  std::vector<std::pair<std::string, std::string>> Values;
  std::vector<std::string> Options; ///< every spelling, flags and values
  std::string Operand;              ///< the operands' meta ("RECIPE..."), "" for none
};

/// `mixtape PATH --list-options`, read from a child process; a warning and an empty table
/// when it cannot be (a `mixtape` built without `mixtape-runtime`).
CommandSpec listCommand(llvm::StringRef self, llvm::StringRef path) {
  CommandSpec spec{path.str(), {}, {}, {}, ""};
  llvm::SmallVector<llvm::StringRef, 4> words;
  llvm::SplitString(path, words, " ");
  std::vector<std::string> args(words.begin(), words.end());
  args.push_back("--list-options");
  const cli::Captured listing = cli::runCapturing(self, args, /*quietErrors=*/true);
  if (listing.Status != 0) {
    llvm::errs() << "mixtape completion: warning: no options for 'mixtape " << path << "' (exit " << listing.Status
                 << (listing.Message.empty() ? "" : ": " + listing.Message) << "); its arguments complete as files\n";
    return spec;
  }
  llvm::SmallVector<llvm::StringRef, 32> lines;
  llvm::StringRef(listing.Out).split(lines, '\n', -1, false);
  for (llvm::StringRef line : lines) {
    llvm::SmallVector<llvm::StringRef, 3> fields;
    line.split(fields, '\t');
    llvm::StringRef kind = fields[0], names = fields.size() > 1 ? fields[1] : "";
    llvm::StringRef meta = fields.size() > 2 ? fields[2] : "";
    if (kind == "command")
      spec.Subcommands.push_back(names.str());
    else if (kind == "operand")
      spec.Operand = names.str();
    else if (kind == "flag" || kind == "value" || kind == "prefix") {
      llvm::SmallVector<llvm::StringRef, 2> spellings;
      names.split(spellings, ' ');
      for (llvm::StringRef name : spellings) {
        spec.Options.push_back(name.str());
        if (kind == "value")
          spec.Values.emplace_back(name.str(), meta.str());
      }
    }
  }
  return spec;
}

/// Every command under `path`, depth first, `path` itself first.
void listAll(llvm::StringRef self, llvm::StringRef path, std::vector<CommandSpec> &out) {
  out.push_back(listCommand(self, path));
  std::vector<std::string> subcommands = out.back().Subcommands;
  for (const std::string &name : subcommands)
    listAll(self, path.empty() ? name : (path + " " + name).str(), out);
}

/// How the shell completes a word that `meta` names: the lowercase alternatives of a choice
/// ("cached|full", "bytes|PATH") as words; RECIPE as .toml files, NAME.ext as .ext files,
/// a *DIR as folders, FILE, PATH, PREFIX and INPUT as any file; anything else (a number,
/// a node's name) as nothing.
std::string completionAction(llvm::StringRef meta) {
  static const llvm::StringRef kFileMetas[] = {"FILE", "PATH", "PREFIX", "INPUT"};
  llvm::SmallVector<llvm::StringRef, 4> alternatives;
  meta.split(alternatives, '|');
  std::vector<std::string> words, actions;
  for (llvm::StringRef alternative : alternatives) {
    if (alternative.lower() == alternative.str()) {
      words.push_back(alternative.str());
      continue;
    }
    llvm::StringRef word = alternative.split(' ').first.trim("[]").rtrim('.');
    if (word == "RECIPE")
      actions.push_back("_mixtape_files '*.toml'");
    else if (word.contains('.'))
      actions.push_back(("_mixtape_files '*." + word.rsplit('.').second + "'").str());
    else if (word.endswith("DIR"))
      actions.push_back("_mixtape_dirs");
    else if (llvm::is_contained(kFileMetas, word))
      actions.push_back("_mixtape_files");
  }
  if (!words.empty())
    actions.insert(actions.begin(), "_mixtape_words '" + llvm::join(words, " ") + "'");
  return actions.empty() ? ":" : llvm::join(actions, "; ");
}

/// A word of the script in single quotes: names, paths of names and option spellings, which
/// never hold one.
std::string shellWord(llvm::StringRef word) { return "'" + word.str() + "'"; }

void writeBash(llvm::raw_ostream &os, llvm::ArrayRef<CommandSpec> specs) {
  os << "_mixtape_commands() { # PATH: the subcommands of `mixtape PATH`\n  case $1 in\n";
  for (const CommandSpec &spec : specs)
    if (!spec.Subcommands.empty())
      os << "    " << shellWord(spec.Path) << ") echo " << shellWord(llvm::join(spec.Subcommands, " ")) << " ;;\n";
  os << "  esac\n}\n\n";
  os << "_mixtape_options() { # PATH: the options of `mixtape PATH`\n  case $1 in\n";
  for (const CommandSpec &spec : specs)
    os << "    " << shellWord(spec.Path) << ") echo " << shellWord(llvm::join(spec.Options, " ")) << " ;;\n";
  os << "  esac\n}\n\n";
  os << "_mixtape_value() { # PATH OPTION: completes the value of OPTION; fails when it takes none\n"
        "  case \"$1 $2\" in\n";
  for (const CommandSpec &spec : specs)
    for (const auto &[name, meta] : spec.Values)
      os << "    " << shellWord(spec.Path + " " + name) << ") " << completionAction(meta) << " ;;\n";
  os << "    *) return 1 ;;\n  esac\n}\n\n";
  os << "_mixtape_operand() { # PATH: completes an operand of `mixtape PATH`\n  case $1 in\n";
  for (const CommandSpec &spec : specs)
    if (spec.Subcommands.empty())
      os << "    " << shellWord(spec.Path) << ") " << (spec.Operand.empty() ? ":" : completionAction(spec.Operand))
         << " ;;\n";
  os << "    *) _mixtape_files ;;\n  esac\n}\n\n";
  os << R"sh(_mixtape_words() { local IFS=$' \t\n'; COMPREPLY+=($(compgen -W "$1" -- "$cur")); }
_mixtape_dirs() {
  compopt -o filenames 2>/dev/null
  local IFS=$'\n'
  COMPREPLY+=($(compgen -d -- "$cur"))
}
_mixtape_files() { # [GLOB]: the files GLOB matches (any without one), and folders to go into
  compopt -o filenames 2>/dev/null
  local IFS=$'\n'
  if [[ -n $1 ]]; then
    COMPREPLY+=($(compgen -f -X "!$1" -- "$cur") $(compgen -d -- "$cur"))
  else
    COMPREPLY+=($(compgen -f -- "$cur"))
  fi
}

_mixtape() {
  [[ -n ${ZSH_VERSION-} ]] && emulate -L ksh # arrays from 0, as bash's
  local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]} path='' i
  COMPREPLY=()
  # `--opt=value` reaches here as three words: --opt, = and value.
  if [[ $cur == = ]]; then
    cur=''
  elif [[ $prev == = ]]; then
    prev=${COMP_WORDS[COMP_CWORD-2]}
  fi
  for ((i = 1; i < COMP_CWORD; i++)); do
    [[ " $(_mixtape_commands "$path") " == *" ${COMP_WORDS[i]} "* ]] || break
    path=${path:+$path }${COMP_WORDS[i]}
  done
  if ((i < COMP_CWORD)) && _mixtape_value "$path" "$prev"; then
    return 0
  fi
  local commands
  commands=$(_mixtape_commands "$path")
  if [[ $cur == -* ]]; then
    _mixtape_words "$(_mixtape_options "$path")"
  elif [[ -n $commands ]]; then
    ((i == COMP_CWORD)) && _mixtape_words "$commands"
  else
    _mixtape_operand "$path"
  fi
  return 0
}
complete -F _mixtape mixtape
)sh";
}

} // namespace

int mixtape::cli::schemaMain(llvm::ArrayRef<llvm::StringRef> args) {
  OptionParser options("mixtape schema", "",
                       "Prints the JSON schema (draft-07) of recipes, which grammar/recipe.schema.json holds: editors\n"
                       "such as VS Code's Even Better TOML and taplo complete and check recipes with it.");
  options.epilog("exit status: 0 printed, 2 usage");
  if (std::optional<int> exit = options.parse(args))
    return *exit;
  writeJSONSchema(llvm::outs());
  return Success;
}

int mixtape::cli::completionMain(llvm::ArrayRef<llvm::StringRef> args) {
  std::vector<std::string> shell;
  OptionParser options("mixtape completion", "bash|zsh",
                       "Prints a completion script for the shell, generated from the commands' options (in a few\n"
                       "seconds: write it to a file once, docs/language.md section 13):\n"
                       "  mixtape completion bash > ~/.local/share/bash-completion/completions/mixtape\n"
                       "  mixtape completion zsh > ~/.mixtape-completion.zsh    # sourced in ~/.zshrc after compinit");
  options.positional("bash|zsh", shell, 1, 1).epilog("exit status: 0 printed, 2 usage");
  if (std::optional<int> exit = options.parse(args))
    return *exit;
  if (shell[0] != "bash" && shell[0] != "zsh")
    return options.usageError("unknown shell '" + shell[0] + "'; expected bash or zsh");
  std::string self = llvm::sys::fs::getMainExecutable(nullptr, reinterpret_cast<void *>(&completionMain));
  std::vector<CommandSpec> specs;
  listAll(self, "", specs);
  llvm::outs() << "# " << shell[0] << " completion for mixtape, generated by `mixtape completion " << shell[0]
               << "` from the commands' options.\n";
  // zsh runs the bash functions through its own emulation of `complete` and `compgen`.
  if (shell[0] == "zsh")
    llvm::outs() << "autoload -U +X bashcompinit && bashcompinit\n";
  writeBash(llvm::outs(), specs);
  return Success;
}

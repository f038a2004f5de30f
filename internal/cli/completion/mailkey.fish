# fish completion for mailkey: subcommands, flags and account names.
# Load it with: mailkey completion fish | source
# or install it: mailkey completion fish > ~/.config/fish/completions/mailkey.fish

function __mailkey_complete
    set -l words (commandline -opc) (commandline -ct)
    set -e words[1]
    set -l candidates (command mailkey __complete $words 2>/dev/null)
    if set -q candidates[1]
        printf '%s\n' $candidates
    else
        __fish_complete_path (commandline -ct)    # a file flag's value
    end
end

complete -c mailkey -f -a '(__mailkey_complete)'

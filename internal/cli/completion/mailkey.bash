# bash completion for mailkey: subcommands, flags and account names.
# Load it with: source <(mailkey completion bash)
# or install it: mailkey completion bash > ~/.local/share/bash-completion/completions/mailkey

_mailkey() {
    # The line up to the cursor, split at blanks only: bash also splits words at
    # '=', ':' and '@' (COMP_WORDBREAKS), which account names and --flag=value hold.
    local line=${COMP_LINE:0:COMP_POINT} words
    read -ra words <<<"$line"
    [[ -z $line || $line == *[[:blank:]] ]] && words+=("")
    local cur=${words[${#words[@]}-1]}
    # bash replaces only its own current word: drop what comes before it from each candidate.
    local before=${cur%"${COMP_WORDS[COMP_CWORD]}"}
    local candidate
    COMPREPLY=()
    while IFS= read -r candidate; do
        COMPREPLY+=("${candidate#"$before"}")
    done < <(command mailkey __complete "${words[@]:1}" 2>/dev/null)
}

# With no candidate (a file flag's value), bash completes file names.
complete -o default -F _mailkey mailkey

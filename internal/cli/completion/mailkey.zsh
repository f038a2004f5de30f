#compdef mailkey
# zsh completion for mailkey: subcommands, flags and account names.
# Load it with: source <(mailkey completion zsh)   (after compinit)
# or install it as _mailkey in a folder of $fpath:
#   mailkey completion zsh > "${fpath[1]}/_mailkey"

_mailkey() {
    local -a candidates
    candidates=("${(@f)$(command mailkey __complete "${(@)words[2,CURRENT]}" 2>/dev/null)}")
    candidates=(${candidates:#})
    if (( ${#candidates} )); then
        compadd -Q -- "${candidates[@]}"
    else
        _files    # a file flag's value
    fi
}

if [[ ${funcstack[1]} == _mailkey ]]; then
    _mailkey "$@"
else
    compdef _mailkey mailkey
fi

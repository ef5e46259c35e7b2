// Code that conda runs on its own during install or activation, fetching
// more code from the network and handing it straight to a shell.
// `member_name` is the member's path inside the package, set by the malware check.

rule conda_script_pipes_download_to_shell
{
    meta:
        description = "A conda link or activation script downloads code and runs it in a shell"
        severity = "high"

    strings:
        $pipe = /(curl|wget)[^\n|;&]*\|[ \t]*(sudo[ \t]+)?(ba|da|z|k)?sh\b/
        $substitution = /(ba|da|z|k)?sh[ \t]+-c[ \t]+["']?\$\([ \t]*(curl|wget)\b/

    condition:
        (
            member_name matches /^(bin|Scripts|python-scripts)\/\.[^\/]+-(pre-link|post-link|pre-unlink)\.(sh|bat)$/
            or member_name matches /^etc\/conda\/(activate|deactivate)\.d\//
        )
        and ($pipe or $substitution)
}

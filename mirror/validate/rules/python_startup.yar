// Python runs each line of a site-packages .pth file that starts with
// "import" whenever the interpreter starts. Decoding base64 there and
// executing the result hides code from a reviewer.
// `member_name` is the member's path inside the package, set by the malware check.

rule python_pth_runs_base64_code
{
    meta:
        description = "A .pth file executes code decoded from base64 at every Python start"
        severity = "high"

    strings:
        $import_line = /(^|\n)import[ \t]/
        $decode = /b64decode|base64\.decodebytes|codecs\.decode\([^)\n]*base64/
        $execute = /\b(exec|eval)[ \t]*\(/

    condition:
        member_name matches /\.pth$/ and $import_line and $decode and $execute
}

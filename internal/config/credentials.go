package config

import (
	"fmt"
	"os"
	"strings"
)

// clientIDPrefix marks a line of the tokens file that holds a client id rather than an access token.
const clientIDPrefix = "client_id:"

// readCredentials reads the tokens file (if named) and TAGSTREAM_TOKENS (if set). Messages name the file and
// line of a bad entry but never its value.
func readCredentials(path, pathOrigin, envTokens string, allowShared bool) ([]Credential, []string, error) {
	var creds []Credential
	var warnings []string
	if path != "" {
		st, err := os.Stat(path)
		if err != nil {
			return nil, nil, &Error{Key: "tokens-file", Origin: pathOrigin, Problem: "cannot read " + path + ": " + describeFileErr(err), Err: err}
		}
		if !st.Mode().IsRegular() {
			return nil, nil, &Error{Key: "tokens-file", Origin: pathOrigin, Problem: path + " is not a regular file"}
		}
		if perm := st.Mode().Perm(); perm&0o077 != 0 {
			msg := fmt.Sprintf("%s can be read or written by group or others (mode %04o); run chmod 600 %s", path, perm, path)
			if !allowShared {
				return nil, nil, &Error{Key: "tokens-file", Origin: pathOrigin, Problem: msg + " (or set allow-shared-tokens-file to accept it)"}
			}
			warnings = append(warnings, "tokens-file: "+msg)
		}
		data, err := readSmallFile(path, 16<<20)
		if err != nil {
			return nil, nil, &Error{Key: "tokens-file", Origin: pathOrigin, Problem: err.Error(), Err: err}
		}
		c, err := parseCredentials(string(data), path)
		if err != nil {
			return nil, nil, &Error{Key: "tokens-file", Origin: pathOrigin, Problem: err.Error()}
		}
		creds = append(creds, c...)
		if w := gitExposure(path); w != "" {
			warnings = append(warnings, w)
		}
	}
	if envTokens != "" {
		// One per line or comma-separated.
		text := strings.ReplaceAll(envTokens, ",", "\n")
		c, err := parseCredentials(text, EnvTokens)
		if err != nil {
			return nil, nil, &Error{Key: "tokens", Origin: EnvTokens, Problem: err.Error()}
		}
		creds = append(creds, c...)
	}
	seen := map[Credential]bool{}
	out := creds[:0]
	for i, c := range creds {
		if seen[c] {
			warnings = append(warnings, fmt.Sprintf("tokens: entry %d repeats an earlier one and is ignored", i+1))
			continue
		}
		seen[c] = true
		out = append(out, c)
	}
	return out, warnings, nil
}

// parseCredentials parses one credential per line. where names the source in messages ("tokens.txt",
// "TAGSTREAM_TOKENS").
func parseCredentials(text, where string) ([]Credential, error) {
	var out []Credential
	for i, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(strings.TrimSuffix(line, "\r"))
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		c := Credential{Value: line}
		if rest, ok := strings.CutPrefix(line, clientIDPrefix); ok {
			c = Credential{Value: strings.TrimSpace(rest), ClientID: true}
		}
		if c.Value == "" {
			return nil, fmt.Errorf("%s line %d: %s with no value", where, i+1, clientIDPrefix)
		}
		for _, r := range c.Value {
			if r <= ' ' || r >= 0x7f || r == '&' || r == '#' || r == '?' || r == '=' || r == '/' || r == '%' {
				return nil, fmt.Errorf("%s line %d: the entry contains a space, a control or non-ASCII character, or one of & # ? = / %% (value not shown)", where, i+1)
			}
		}
		out = append(out, c)
	}
	return out, nil
}

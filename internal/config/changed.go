package config

import "slices"

// Changed returns the settings of groups whose values differ between a and b, in table order (the file keys, as
// Keys names them), and "tokens" when the credentials differ (the tokens file's content, or TAGSTREAM_TOKENS).
// A running instance compares the configuration it loaded again (SIGHUP) with the one it runs, to apply the tags and
// to name what needs a restart.
func Changed(a, b *Config, groups Group) []string {
	var out []string
	for _, s := range settings {
		if s.group&groups != 0 && s.get(a) != s.get(b) {
			out = append(out, s.name)
		}
	}
	if groups&GroupAPI != 0 && !slices.Equal(a.Credentials, b.Credentials) {
		out = append(out, "tokens")
	}
	return out
}

package config

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Needs says what a subcommand requires beyond well-formed values.
type Needs struct {
	Tags   bool // at least one tag
	Tokens bool // at least one credential
}

// Loader binds the settings of some groups to a flag.FlagSet and, after the flags are parsed, layers defaults,
// file, environment and flags into a validated Config.
type Loader struct {
	fs       *flag.FlagSet
	groups   Group
	needs    Needs
	config   *string
	flagVals map[string]*flagValue
	defaults Config
	warnings []string // those of the last Load, kept when it fails
}

// flagValue records a flag's raw text; it is applied after the file and the environment.
type flagValue struct {
	s      *setting
	def    string
	value  string
	isBool bool
}

func (f *flagValue) String() string {
	if f == nil {
		return ""
	}
	return f.value
}
func (f *flagValue) Set(v string) error {
	// Check the syntax now so the flag package reports it; the value is applied later.
	var scratch Config
	if err := f.s.set(&scratch, v); err != nil {
		return err
	}
	f.value = v
	return nil
}
func (f *flagValue) IsBoolFlag() bool { return f.isBool }

// FlagKind returns the kind of value a flag registered by a Loader takes ("string", "int", "duration", "list",
// "bool"); ok is false for other flags.
func FlagKind(v flag.Value) (kind string, ok bool) {
	f, ok := v.(*flagValue)
	if !ok {
		return "", false
	}
	switch f.s.kind {
	case kindInt:
		return "int", true
	case kindBool:
		return "bool", true
	case kindDuration:
		return "duration", true
	case kindList:
		return "list", true
	}
	return "string", true
}

// NewLoader registers a flag for every setting in groups, plus --config, on fs. defaults are the values used
// when nothing overrides them (normally Defaults()).
func NewLoader(fs *flag.FlagSet, groups Group, needs Needs, defaults Config) *Loader {
	l := &Loader{fs: fs, groups: groups, needs: needs, flagVals: map[string]*flagValue{}, defaults: defaults}
	l.config = fs.String("config", "", "YAML config file (or TAGSTREAM_CONFIG); flags and TAGSTREAM_* variables override it")
	for _, s := range settings {
		if s.group&groups == 0 {
			continue
		}
		fv := &flagValue{s: s, def: s.get(&defaults), isBool: s.kind == kindBool}
		l.flagVals[s.name] = fv
		usage := s.help()
		if fv.def != "" && fv.def != "false" && fv.def != "0" && fv.def != "0s" {
			usage += " (default " + fv.def + ")"
		}
		fs.Var(fv, s.name, usage)
	}
	return l
}

// Load layers defaults, the YAML file, TAGSTREAM_* variables from env (as from os.Environ) and the parsed
// flags, reads the credentials, and validates everything. It does not dial any broker (see CheckReachable).
// Every problem is a *Error.
func (l *Loader) Load(env []string) (*Config, error) {
	started := time.Now()
	envMap := map[string]string{}
	for _, kv := range env {
		if k, v, ok := strings.Cut(kv, "="); ok {
			envMap[k] = v
		}
	}
	c := l.defaults
	c.StartedAt = started
	c.Warnings = append(slices.Clip(c.Warnings), unknownVariables(envMap)...)
	l.warnings = c.Warnings
	origin := map[string]string{}

	// 1. The file.
	path, pathOrigin := *l.config, "--config"
	if path == "" {
		path, pathOrigin = envMap[EnvConfig], EnvConfig
	}
	if path != "" {
		c.ConfigFile = path
		if err := l.loadFile(&c, path, pathOrigin, origin); err != nil {
			return nil, err
		}
	}

	// 2. The environment.
	for _, s := range settings {
		if s.group&l.groups == 0 {
			continue
		}
		name := EnvName(s.name)
		v, ok := envMap[name]
		if !ok {
			continue
		}
		if err := s.set(&c, v); err != nil {
			return nil, &Error{Key: s.name, Origin: name, Problem: err.Error()}
		}
		origin[s.name] = name
	}

	// 3. The flags that were set.
	var flagErr error
	l.fs.Visit(func(f *flag.Flag) {
		fv, ok := l.flagVals[f.Name]
		if !ok || flagErr != nil {
			return
		}
		if err := fv.s.set(&c, fv.value); err != nil {
			flagErr = &Error{Key: fv.s.name, Origin: "--" + fv.s.name, Problem: err.Error()}
			return
		}
		origin[fv.s.name] = "--" + fv.s.name
	})
	if flagErr != nil {
		return nil, flagErr
	}

	// The default state directory is the user's, not the working directory: a run started from another
	// directory must find the same cursors (starting afresh would skip what was posted meanwhile), and the
	// cursors and dead letters stay out of any repository.
	if _, set := origin["state-dir"]; !set && c.StateDir == "" && l.groups&GroupState != 0 {
		c.StateDir, origin["state-dir"] = defaultStateDir(envMap)
	}

	// 4. Secrets, from the environment only.
	c.NATSUser = envMap[EnvNATSUser]
	c.NATSPassword = envMap[EnvNATSPassword]
	c.NATSToken = envMap[EnvNATSToken]
	c.KafkaSASLPassword = envMap[EnvKafkaSASLPassword]
	if l.groups&GroupAPI != 0 {
		creds, warn, err := readCredentials(c.TokensFile, origin["tokens-file"], envMap[EnvTokens], c.AllowSharedTokens)
		if err != nil {
			return nil, err
		}
		c.Credentials = creds
		c.Warnings = append(c.Warnings, warn...)
		l.warnings = c.Warnings
	}

	v := validator{c: &c, origin: origin, groups: l.groups, needs: l.needs}
	if err := v.validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// Warnings returns the warnings of the last Load, also when it failed: a misspelt TAGSTREAM_* variable is often
// the cause of the error (TAGSTREAM_TAG=coffee, then "no tags"), so the command prints them before the error.
func (l *Loader) Warnings() []string { return l.warnings }

// Origin returns a readable origin for key; used in messages.
func originOf(origin map[string]string, key string) string {
	if o, ok := origin[key]; ok {
		return o
	}
	return "default"
}

// loadFile decodes the YAML file into c. Unknown keys are errors naming the key and its line.
func (l *Loader) loadFile(c *Config, path, pathOrigin string, origin map[string]string) error {
	f, err := os.Open(path)
	if err != nil {
		return &Error{Key: "config", Origin: pathOrigin, Problem: "cannot read " + path + ": " + describeFileErr(err), Err: err}
	}
	defer f.Close()
	const maxConfig = 4 << 20
	data, err := io.ReadAll(io.LimitReader(f, maxConfig+1))
	if err != nil {
		return &Error{Key: "config", Origin: pathOrigin, Problem: "cannot read " + path + ": " + describeFileErr(err), Err: err}
	}
	if len(data) > maxConfig {
		return &Error{Key: "config", Origin: pathOrigin, Problem: fmt.Sprintf("%s is larger than %d bytes", path, maxConfig)}
	}
	base := filepath.Base(path)
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil // an empty file sets nothing
		}
		return &Error{Key: "config", Origin: path, Problem: "not valid YAML: " + strings.TrimPrefix(err.Error(), "yaml: "), Err: err}
	}
	if len(doc.Content) == 0 {
		return nil
	}
	root := doc.Content[0]
	if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
		return nil
	}
	if root.Kind != yaml.MappingNode {
		return &Error{Key: "config", Origin: fmt.Sprintf("%s line %d", base, root.Line), Problem: "the file must be a mapping of key: value"}
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		at := fmt.Sprintf("%s line %d", base, k.Line)
		s, ok := settingByName[k.Value]
		if !ok {
			problem := fmt.Sprintf("unknown key %q", k.Value)
			if alt := suggest(k.Value); alt != "" {
				problem += fmt.Sprintf(" (did you mean %q?)", alt)
			}
			if k.Value == "tokens" || k.Value == "token" || k.Value == "access-token" {
				problem = fmt.Sprintf("unknown key %q: tokens never go in the config file; use tokens-file or %s", k.Value, EnvTokens)
			}
			return &Error{Key: k.Value, Origin: at, Problem: problem}
		}
		if s.group&l.groups == 0 {
			// A key of another subcommand (a shared config file): accepted and ignored.
			continue
		}
		if prev, dup := seen[k.Value]; dup {
			return &Error{Key: k.Value, Origin: at, Problem: fmt.Sprintf("key given twice (first on line %d)", prev)}
		}
		seen[k.Value] = k.Line
		raw, err := scalarText(v, s.kind)
		if err != nil {
			return &Error{Key: k.Value, Origin: at, Problem: err.Error()}
		}
		if err := s.set(c, raw); err != nil {
			return &Error{Key: k.Value, Origin: at, Problem: err.Error()}
		}
		origin[k.Value] = at
	}
	return nil
}

// scalarText returns a node's value as the text a flag would carry: a scalar as is, a sequence of scalars
// (lists only) joined by commas.
func scalarText(n *yaml.Node, k kind) (string, error) {
	switch n.Kind {
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return "", nil
		}
		if k == kindList && strings.Contains(n.Value, "\n") {
			return n.Value, nil
		}
		return n.Value, nil
	case yaml.SequenceNode:
		if k != kindList {
			return "", errors.New("a single value is expected, not a list")
		}
		parts := make([]string, 0, len(n.Content))
		for _, it := range n.Content {
			if it.Kind != yaml.ScalarNode {
				return "", fmt.Errorf("line %d: list items must be plain values", it.Line)
			}
			if strings.Contains(it.Value, ",") {
				return "", fmt.Errorf("line %d: list item %q contains a comma", it.Line, it.Value)
			}
			parts = append(parts, it.Value)
		}
		return strings.Join(parts, ","), nil
	case yaml.AliasNode:
		if n.Alias != nil {
			return scalarText(n.Alias, k)
		}
	}
	return "", errors.New("a plain value is expected, not a mapping")
}

// suggest returns the known key closest to an unknown one, or "".
func suggest(key string) string {
	norm := strings.NewReplacer("_", "-", ".", "-").Replace(strings.ToLower(key))
	if _, ok := settingByName[norm]; ok {
		return norm
	}
	best, bestD := "", 3
	names := make([]string, 0, len(settingByName))
	for n := range settingByName {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if d := editDistance(norm, n); d < bestD {
			best, bestD = n, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func describeFileErr(err error) string {
	switch {
	case errors.Is(err, os.ErrNotExist):
		return "no such file"
	case errors.Is(err, os.ErrPermission):
		return "permission denied"
	}
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

// Validate checks a Config built in code (the demo builds one) with the same rules as Load, for the settings
// of groups.
func Validate(c *Config, groups Group, needs Needs) error {
	v := validator{c: c, origin: map[string]string{}, groups: groups, needs: needs}
	return v.validate()
}

// defaultStateDir returns the default state directory per the XDG base directory specification:
// $XDG_STATE_HOME/tagstream when XDG_STATE_HOME is an absolute path, else $HOME/.local/state/tagstream, and where
// the value came from; "" when neither variable is set.
func defaultStateDir(env map[string]string) (dir, origin string) {
	if x := env["XDG_STATE_HOME"]; filepath.IsAbs(x) {
		return filepath.Join(x, "tagstream"), "default, from XDG_STATE_HOME"
	}
	if h := env["HOME"]; h != "" {
		return filepath.Join(h, ".local", "state", "tagstream"), "default, from HOME"
	}
	return "", "default"
}

package config

import (
	"errors"
	"flag"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// loadWithout loads a configuration whose file sets what body says, from the environment vars, without the
// --state-dir the other tests pass.
func loadWithout(t *testing.T, body string, vars ...string) (*Config, error) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	l := NewLoader(fs, GroupAll, Needs{Tags: true, Tokens: true}, Defaults())
	if err := fs.Parse([]string{"--config", p}); err != nil {
		t.Fatal(err)
	}
	return l.Load(vars)
}

func TestTheDefaultStateDirectoryIsTheUsersNotTheWorkingDirectory(t *testing.T) {
	good := tokensFile(t, secretToken+"\n", 0o600)
	base := "tags: x\nsink: stdout\ntokens-file: " + good + "\n"
	home, xdg := t.TempDir(), t.TempDir()
	tests := []struct {
		name string
		vars []string
		body string
		want string
	}{
		{"under HOME, created with its parents", []string{"HOME=" + home}, base, filepath.Join(home, ".local", "state", "tagstream")},
		{"under XDG_STATE_HOME when it is set", []string{"HOME=" + home, "XDG_STATE_HOME=" + xdg}, base, filepath.Join(xdg, "tagstream")},
		{"a relative XDG_STATE_HOME is ignored, as the specification says", []string{"HOME=" + home, "XDG_STATE_HOME=rel"}, base, filepath.Join(home, ".local", "state", "tagstream")},
		{"state-dir set in the file wins", []string{"HOME=" + home}, base + "state-dir: " + filepath.Join(xdg, "mine") + "\n", filepath.Join(xdg, "mine")},
		{"an empty state-dir set on purpose stays empty", []string{"HOME=" + home}, base + "state-dir: ''\ncheckpoint-store: memory\n", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := loadWithout(t, tt.body, tt.vars...)
			if err != nil {
				t.Fatal(err)
			}
			if c.StateDir != tt.want {
				t.Errorf("state-dir = %q, want %q", c.StateDir, tt.want)
			}
		})
	}
	t.Run("without HOME or XDG_STATE_HOME the bolt store asks for state-dir", func(t *testing.T) {
		_, err := loadWithout(t, base)
		var ce *Error
		if !errors.As(err, &ce) || ce.Key != "state-dir" || !strings.Contains(err.Error(), "needs XDG_STATE_HOME or HOME") {
			t.Fatalf("error = %v, want one on state-dir that names XDG_STATE_HOME and HOME", err)
		}
	})
}

func TestATokensFileGitWouldCommitIsWarnedAbout(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git is not installed")
	}
	git := func(t *testing.T, dir string, args ...string) {
		t.Helper()
		cmd := exec.Command("git", append([]string{"-C", dir}, args...)...)
		cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "HOME="+t.TempDir())
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	repo := func(t *testing.T, gitignore string) string {
		t.Helper()
		dir := t.TempDir()
		git(t, dir, "init", "-q")
		if gitignore != "" {
			if err := os.WriteFile(filepath.Join(dir, ".gitignore"), []byte(gitignore), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return dir
	}
	write := func(t *testing.T, path string) string {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(secretToken+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	tracked := repo(t, "")
	trackedFile := write(t, filepath.Join(tracked, "tokens"))
	git(t, tracked, "add", "tokens")
	tests := []struct {
		name string
		path string
		want string // "" = no warning
	}{
		{"a file outside any work tree", write(t, filepath.Join(t.TempDir(), "tokens")), ""},
		{"a file inside a work tree that ignores it", write(t, filepath.Join(repo(t, "/tokens\n"), "tokens")), ""},
		{"a file inside a work tree that does not ignore it", write(t, filepath.Join(repo(t, "*.db\n"), "tokens")), "is inside the git work tree"},
		{"a file in a subdirectory of a work tree", write(t, filepath.Join(repo(t, ""), "conf", "tokens")), "not ignored: a git add would commit the tokens"},
		{"a file git already tracks", trackedFile, "is tracked by git"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := load(t, env{file: "tags: x\nsink: stdout\ntokens-file: " + tt.path + "\n", needs: Needs{Tags: true, Tokens: true}})
			if err != nil {
				t.Fatal(err)
			}
			var got string
			for _, w := range c.Warnings {
				if strings.HasPrefix(w, "tokens-file ") {
					got = w
				}
			}
			switch {
			case tt.want == "" && got != "":
				t.Errorf("unexpected warning %q", got)
			case tt.want != "" && !strings.Contains(got, tt.want):
				t.Errorf("warning %q, want one saying %q", got, tt.want)
			case strings.Contains(got, secretToken):
				t.Errorf("the warning shows the token")
			}
		})
	}
}

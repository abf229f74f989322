package config

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// gitExposure returns a warning when the file at path sits inside a git work tree and git does not ignore it (a
// `git add .` would commit the tokens), or when git already tracks it; "" when the file is outside any work tree
// or ignored. It asks git itself (check-ignore, ls-files), so every .gitignore, .git/info/exclude and global
// excludes file counts; without git on PATH it says that it could not tell.
func gitExposure(path string) string {
	abs, err := filepath.Abs(path)
	if err != nil {
		return ""
	}
	dir := filepath.Dir(abs)
	root := workTree(dir)
	if root == "" {
		return ""
	}
	const advice = "keep it outside the repository (for example ~/.config/tagstream/tokens) or add it to .gitignore"
	git, err := exec.LookPath("git")
	if err != nil {
		return fmt.Sprintf("tokens-file %s is inside the git work tree %s, and without git on PATH tagstream cannot tell whether it is ignored; %s", path, root, advice)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	run := func(args ...string) (int, error) {
		cmd := exec.CommandContext(ctx, git, append([]string{"-C", dir}, args...)...)
		err := cmd.Run()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode(), nil
		}
		return 0, err
	}
	if code, err := run("ls-files", "--error-unmatch", "--", abs); err == nil && code == 0 {
		return fmt.Sprintf("tokens-file %s is tracked by git in %s: the tokens are in the repository's history; "+
			"revoke them, git rm --cached the file and %s", path, root, advice)
	}
	switch code, err := run("check-ignore", "-q", "--", abs); {
	case err != nil || code > 1:
		return fmt.Sprintf("tokens-file %s is inside the git work tree %s and git could not say whether it is ignored; %s", path, root, advice)
	case code == 1:
		return fmt.Sprintf("tokens-file %s is inside the git work tree %s and not ignored: a git add would commit the tokens; %s", path, root, advice)
	}
	return ""
}

// workTree returns the nearest directory at or above dir that holds .git (a directory, or a file for a linked
// worktree or submodule), or "".
func workTree(dir string) string {
	for {
		if _, err := os.Lstat(filepath.Join(dir, ".git")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

package pipeline

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/tagstream/tagstream/group"
	"github.com/tagstream/tagstream/internal/config"
	"github.com/tagstream/tagstream/poller"
)

// ErrNotStarted is returned by Reload before polling started (the broker not reached yet).
var ErrNotStarted = errors.New("pipeline: polling has not started yet")

// Reload applies what can change while the pipeline runs from next, the configuration loaded again (SIGHUP to
// run): the tags. A single instance then polls exactly next.Tags: added tags start at once (their saved cursors
// are read), removed tags stop after their poll in flight, and their cursors stay in the store. In group mode the
// tags of next are added to the group's set (taking tags out is `tagstream tags remove`). Every other setting
// that differs from the running configuration is logged as needing a restart. It returns ErrNotStarted before
// polling started, and the error of the change otherwise (the running tags stay as they were).
func (p *Pipeline) Reload(ctx context.Context, next *config.Config) error {
	var restart []string
	for _, k := range config.Changed(p.cfg, next, config.GroupAll) {
		if k != "tags" {
			restart = append(restart, k)
		}
	}
	if len(restart) > 0 {
		p.log.Warn("configuration reloaded: changed settings other than tags need a restart to take effect",
			"keys", strings.Join(restart, ","))
	}
	p.mu.Lock()
	pl, js := p.poller, p.js
	p.mu.Unlock()
	if pl == nil {
		return ErrNotStarted
	}
	if p.cfg.Group != "" {
		if len(next.Tags) == 0 {
			p.log.Info("configuration reloaded: no tags to add to the group", "group", p.cfg.Group)
			return nil
		}
		if err := group.AddTags(ctx, js, p.cfg.Group, next.Tags...); err != nil {
			return fmt.Errorf("pipeline: add the reloaded tags to group %s: %w", p.cfg.Group, err)
		}
		p.log.Info("configuration reloaded: tags added to the group's set", "group", p.cfg.Group, "tags", len(next.Tags))
		return nil
	}
	var before []string
	for _, st := range pl.Status() {
		before = append(before, st.Tag)
	}
	if err := pl.Assign(ctx, poller.Assignment{Tags: next.Tags}); err != nil {
		return fmt.Errorf("pipeline: reload the tags: %w", err)
	}
	added, removed := 0, 0
	for _, t := range next.Tags {
		if !slices.Contains(before, t) {
			added++
		}
	}
	for _, t := range before {
		if !slices.Contains(next.Tags, t) {
			removed++
		}
	}
	p.log.Info("configuration reloaded: tags applied", "tags", len(next.Tags), "added", added, "removed", removed)
	return nil
}

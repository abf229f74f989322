package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tagstream/tagstream/group"
	"github.com/tagstream/tagstream/internal/config"
	"github.com/tagstream/tagstream/publisher"
)

// GroupTags reads and changes a group's set of tags over its own NATS connection, without joining the group
// (`tagstream tags`). The running members pick a change up within about a second. Build it with OpenGroupTags and
// Close it when done; it is safe for concurrent use.
type GroupTags struct {
	nc    *nats.Conn
	js    jetstream.JetStream
	group string
}

// OpenGroupTags connects to the NATS servers of cfg (nats-url and its credentials) for cfg.Group's set of tags.
// An error wraps ErrUnreachable when the servers could not be reached.
func OpenGroupTags(ctx context.Context, cfg *config.Config, logger *slog.Logger) (*GroupTags, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	nc, err := publisher.Connect(ctx, NATSConnConfig(cfg), logger)
	if err != nil {
		return nil, groupErr(cfg.Group, err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, groupErr(cfg.Group, err)
	}
	return &GroupTags{nc: nc, js: js, group: cfg.Group}, nil
}

// List returns the group's tags, sorted. It fails with an error wrapping group.ErrNoGroup when the group does not
// exist (no tag was ever added to it).
func (g *GroupTags) List(ctx context.Context) ([]string, error) {
	tags, err := group.ListTags(ctx, g.js, g.group)
	if err != nil {
		return nil, groupErr(g.group, err)
	}
	return tags, nil
}

// Add adds tags to the group's set (creating the group when it does not exist) and returns those that were not in
// it, sorted. A tag that schema.ValidateTag refuses fails the call before anything is written (the error wraps
// group.ErrInvalidTag).
func (g *GroupTags) Add(ctx context.Context, tags ...string) ([]string, error) {
	before, err := group.ListTags(ctx, g.js, g.group)
	if err != nil && !errors.Is(err, group.ErrNoGroup) {
		return nil, groupErr(g.group, err)
	}
	if err := group.AddTags(ctx, g.js, g.group, tags...); err != nil {
		return nil, groupErr(g.group, err)
	}
	return newTags(tags, func(t string) bool { return !slices.Contains(before, t) }), nil
}

// Remove removes tags from the group's set and returns those that were in it, sorted; their cursors are kept for
// the members' group-retention. It fails with an error wrapping group.ErrNoGroup when the group does not exist.
func (g *GroupTags) Remove(ctx context.Context, tags ...string) ([]string, error) {
	before, err := group.ListTags(ctx, g.js, g.group)
	if err != nil {
		return nil, groupErr(g.group, err)
	}
	if err := group.RemoveTags(ctx, g.js, g.group, tags...); err != nil {
		return nil, groupErr(g.group, err)
	}
	return newTags(tags, func(t string) bool { return slices.Contains(before, t) }), nil
}

// Close closes the connection.
func (g *GroupTags) Close() { g.nc.Close() }

// newTags returns the tags that keep says changed, sorted and without repeats.
func newTags(tags []string, keep func(string) bool) []string {
	var out []string
	for _, t := range tags {
		if keep(t) {
			out = append(out, t)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// groupErr names the group in err, and marks it with ErrUnreachable when the servers could not be reached.
func groupErr(name string, err error) error {
	if unreachable(err) && !errors.Is(err, ErrUnreachable) && !errors.Is(err, publisher.ErrUnreachable) {
		return fmt.Errorf("group %s: %w: %w", name, ErrUnreachable, err)
	}
	return fmt.Errorf("group %s: %w", name, err)
}

package config

import (
	"strings"
	"time"

	"github.com/tagstream/tagstream/group"
)

// maxGroupReplicas is the most replicas a JetStream bucket can have.
const maxGroupReplicas = 5

// cluster checks the group-mode settings: the names (group.CheckName, the one rule for them), the lease, the
// replicas and the retention, and, for a command that runs the pipeline, that the cursors are in JetStream: the
// members of a group share them.
func (v *validator) cluster() error {
	c := v.c
	if c.Group != "" {
		if err := group.CheckName(c.Group); err != nil {
			return v.fail("group", "%q: use letters, digits, '-' and '_' only, at most 64 characters", c.Group)
		}
	}
	if c.GroupMember != "" {
		if err := group.CheckName(c.GroupMember); err != nil {
			return v.fail("group-member", "%q: use letters, digits, '-' and '_' only, at most 64 characters", c.GroupMember)
		}
	}
	if c.GroupLease != 0 && c.GroupLease < time.Second {
		return v.fail("group-lease", "%s: 0 (the group's lease) or at least 1s", c.GroupLease)
	}
	if c.GroupReplicas < 0 || c.GroupReplicas > maxGroupReplicas {
		return v.fail("group-replicas", "%d is out of range 0..%d (0: 3, or 1 on a JetStream that is not clustered)",
			c.GroupReplicas, maxGroupReplicas)
	}
	if err := group.CheckStatusURL(c.GroupStatusURL); err != nil {
		return v.fail("group-status-url", "%s", strings.TrimPrefix(err.Error(), group.ErrConfig.Error()+": "))
	}
	if c.GroupRetention <= 0 {
		return v.fail("group-retention", "%s must be positive", c.GroupRetention)
	}
	if c.Group == "" {
		return nil
	}
	if v.groups&GroupState != 0 && c.CheckpointStore != StoreJetStreamKV {
		return v.fail("checkpoint-store", "%s cannot be shared: group mode (group %q) needs checkpoint-store %s, so that "+
			"every member reads and fences the same cursors", c.CheckpointStore, c.Group, StoreJetStreamKV)
	}
	if _, err := ParseNATSURLs(c.NATSURL); err != nil {
		return v.fail("nats-url", "%v", err)
	}
	return nil
}

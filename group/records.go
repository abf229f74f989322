package group

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tagstream/tagstream/schema"
)

// The bucket layout of a group (documented in the package documentation).
const (
	bucketPrefix  = "tagstream-group-"
	membersSuffix = "-members"

	prefixTag   = "tag."
	prefixOwner = "own."
	prefixRate  = "rate."
	prefixToken = "tok."

	recordVersion = 1
	// markerTTL is how long the members bucket keeps the marker of an expired membership, so that watchers
	// learn of the expiry.
	markerTTL = time.Minute
)

// StateBucket is the name of the bucket that holds group's tag set, owners, rate estimates and token shares.
func StateBucket(group string) string { return bucketPrefix + group }

// MembersBucket is the name of the bucket that holds group's memberships (one key per live member, expiring
// after the lease).
func MembersBucket(group string) string { return bucketPrefix + group + membersSuffix }

// tagKey is a tag's key part: its unpadded base64url encoding (as checkpoint.KVKey), valid for any tag.
func tagKey(tag string) string { return base64.RawURLEncoding.EncodeToString([]byte(tag)) }

// keyTag decodes a key part written by tagKey; ok is false for anything else.
func keyTag(k string) (string, bool) {
	b, err := base64.RawURLEncoding.DecodeString(k)
	if err != nil || schema.ValidateTag(string(b)) != nil {
		return "", false
	}
	return string(b), true
}

func checkTag(tag string) error {
	if err := schema.ValidateTag(tag); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidTag, err)
	}
	return nil
}

// memberRecord is the value of a member's key in the members bucket, rewritten by every heartbeat.
type memberRecord struct {
	V int `json:"v"`
	// Inc tells incarnations of one name apart: a new random value each time the instance joins.
	Inc string `json:"inc"`
	// Join is the revision of the key's first write by this incarnation (0 in that first write).
	Join    uint64        `json:"join,omitempty"`
	Started time.Time     `json:"started"`
	Tokens  []tokenRecord `json:"tokens,omitempty"`
	// StatusURL is where the member serves its /status (Config.StatusURL); empty when it advertises none, as in
	// the records of versions before it was added.
	StatusURL string `json:"status_url,omitempty"`
}

type tokenRecord struct {
	Fingerprint     string `json:"fp"`
	RequestsPerHour int    `json:"rph"`
	// WindowSeconds is the window RequestsPerHour and APILimit refer to.
	WindowSeconds float64 `json:"window_s"`
	// APILimit is the token's limit per WindowSeconds as the API reported it (X-Ratelimit-Limit) to this member,
	// when it has seen one (JetStream.ReportLimits); the group divides it rather than RequestsPerHour.
	APILimit int `json:"api_rph,omitempty"`
}

// tagRecord is the value of tag.<tag>: present in the set, or removed at a time (its cursor kept until then plus
// the retention).
type tagRecord struct {
	V       int       `json:"v"`
	Added   time.Time `json:"added,omitzero"`
	Removed time.Time `json:"removed,omitzero"`
}

// ownerRecord is the value of own.<tag>: which incarnation of which member owns the tag.
type ownerRecord struct {
	V      int       `json:"v"`
	Member string    `json:"member"`
	Inc    string    `json:"inc"`
	Join   uint64    `json:"join"`
	Since  time.Time `json:"since"`
}

// rateRecord is the value of rate.<tag>: the owner's posting-rate estimate.
type rateRecord struct {
	V    int       `json:"v"`
	Rate float64   `json:"r"`
	At   time.Time `json:"at"`
}

// shareRecord is the value of tok.<fingerprint>: the division of one token among members. Each member writes
// only its own entry, by compare-and-set on the key's revision, and never so that the fractions sum above 1.
type shareRecord struct {
	V      int                   `json:"v"`
	Shares map[string]shareEntry `json:"shares"`
}

type shareEntry struct {
	Inc      string  `json:"inc"`
	Join     uint64  `json:"join"`
	Fraction float64 `json:"f"`
}

func encode(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("group: encode %T: %v", v, err)) // only plain structs of this file are encoded
	}
	return b
}

func decode[T any](b []byte) (T, error) {
	var v T
	err := json.Unmarshal(b, &v)
	return v, err
}

// openState binds to group's state bucket (tag set, owners, rates, shares), creating it when create is set.
func openState(ctx context.Context, js jetstream.JetStream, group string, replicas int, create bool) (jetstream.KeyValue, error) {
	return openBucket(ctx, js, jetstream.KeyValueConfig{
		Bucket:      StateBucket(group),
		Description: "tagstream group " + group + ": tag set, owners, rate estimates, token shares",
		History:     1,
	}, replicas, create)
}

// openMembers binds to group's members bucket, creating it (with TTL lease) when create is set, and returns the
// group's lease: the bucket's TTL.
func openMembers(ctx context.Context, js jetstream.JetStream, group string, replicas int, lease time.Duration, create bool) (jetstream.KeyValue, time.Duration, error) {
	if lease == 0 {
		lease = DefaultLease
	}
	members, err := openBucket(ctx, js, jetstream.KeyValueConfig{
		Bucket:         MembersBucket(group),
		Description:    "tagstream group " + group + ": live members, each key expiring one lease after its last heartbeat",
		History:        1,
		TTL:            lease,
		LimitMarkerTTL: markerTTL,
	}, replicas, create)
	if err != nil {
		return nil, 0, err
	}
	st, err := members.Status(ctx)
	if err != nil {
		return nil, 0, fmt.Errorf("group: bucket %s: %w", MembersBucket(group), err)
	}
	if st.TTL() <= 0 || st.LimitMarkerTTL() <= 0 {
		return nil, 0, fmt.Errorf("%w: bucket %s has no TTL or no limit markers: it was not created by tagstream",
			ErrConfig, MembersBucket(group))
	}
	return members, st.TTL(), nil
}

// openBucket binds to cfg.Bucket, or creates it (replicas 0: 3, or 1 on a JetStream that is not clustered).
func openBucket(ctx context.Context, js jetstream.JetStream, cfg jetstream.KeyValueConfig, replicas int, create bool) (jetstream.KeyValue, error) {
	kv, err := js.KeyValue(ctx, cfg.Bucket)
	if err == nil {
		return kv, nil
	}
	if !errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, fmt.Errorf("group: bucket %s: %w", cfg.Bucket, err)
	}
	if !create {
		return nil, fmt.Errorf("%w: bucket %s: %w", ErrNoGroup, cfg.Bucket, err)
	}
	auto := replicas == 0
	if auto {
		replicas = DefaultReplicas
	}
	cfg.Replicas = replicas
	cfg.Storage = jetstream.FileStorage
	for attempt := 0; ; attempt++ {
		kv, err = js.CreateKeyValue(ctx, cfg)
		var apiErr *jetstream.APIError
		if auto && errors.As(err, &apiErr) && apiErr.ErrorCode == jsErrReplicasNotSupported {
			cfg.Replicas = 1
			kv, err = js.CreateKeyValue(ctx, cfg)
		}
		// A cluster that just lost a peer, or is electing its meta leader, cannot place the stream for a moment.
		transient := noLeader(err) || errors.As(err, &apiErr) && apiErr.ErrorCode == jsErrNoSuitablePeers
		if !transient || attempt >= 20 {
			break
		}
		if serr := sleepCtx(ctx, 250*time.Millisecond); serr != nil {
			break
		}
	}
	if errors.Is(err, jetstream.ErrBucketExists) { // created at the same time by another instance
		kv, err = js.KeyValue(ctx, cfg.Bucket)
	}
	if err != nil {
		return nil, fmt.Errorf("group: create bucket %s (replicas %d): %w", cfg.Bucket, cfg.Replicas, err)
	}
	return kv, nil
}

// jsErrReplicasNotSupported is the JetStream API error code for "replicas > 1 not supported in non-clustered
// mode".
const jsErrReplicasNotSupported jetstream.ErrorCode = 10074

// jsErrNoSuitablePeers is the JetStream API error code for "no suitable peers for placement".
const jsErrNoSuitablePeers jetstream.ErrorCode = 10005

// isGone reports whether err says a key does not exist (never written, deleted, purged or expired).
func isGone(err error) bool {
	return errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted)
}

// isConflict reports whether err is a failed compare-and-set (the key's revision was not the one given, or the
// key exists for a create).
func isConflict(err error) bool {
	return errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyExists)
}

// noLeader reports whether err says that no server answered for the bucket's stream (no leader elected yet, as
// right after the bucket was created or while a leader is elected again).
func noLeader(err error) bool {
	return errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrNoStreamResponse)
}

// splitKey splits a state-bucket key into its prefix and the rest.
func splitKey(key string) (prefix, rest string) {
	i := strings.IndexByte(key, '.')
	if i < 0 {
		return "", key
	}
	return key[:i+1], key[i+1:]
}

package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/tagstream/tagstream/internal/config"
	"github.com/tagstream/tagstream/publisher"
)

// CheckResult is the outcome of one check of Check.
type CheckResult struct {
	// Name is "api", "sink", "state" or, in group mode, "group".
	Name string
	// Detail says what the check found when it passed.
	Detail string
	// Err says why the check failed; nil when it passed. It wraps ErrUnreachable when a broker could not be
	// reached, and a *poller.ProbeError when the API request failed. Neither text holds a secret.
	Err error
	// Hint says in words what a failure means and what to look at ("refused: nothing listens at ..."); "" when
	// there is nothing to add to Err.
	Hint string
}

// Unreachable reports whether the check failed only because a broker could not be reached.
func (r CheckResult) Unreachable() bool { return errors.Is(r.Err, ErrUnreachable) }

// Check reaches what run would use, with the same settings and the same probes, and publishes, creates and
// locks nothing: the API (one request with the first token), the broker (server, then the stream or topic run
// would publish to) and the checkpoint store (the bolt file is only looked at: a running tagstream holds its
// lock). Of deps only Logger is used (nil discards).
func Check(ctx context.Context, cfg *config.Config, deps Deps) []CheckResult {
	logger := deps.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	red := cfg.Redactor()
	clean := func(name, detail string, err error) CheckResult {
		r := CheckResult{Name: name, Detail: red.String(detail)}
		if err != nil {
			// Only a broker's absence is an outage run waits for; an API that cannot be reached is a failure.
			if name != "api" && unreachable(err) && !errors.Is(err, ErrUnreachable) {
				err = fmt.Errorf("%w: %w", ErrUnreachable, err)
			}
			r.Err = red.Error(err)
		}
		return r
	}
	pc := pollerConfig(cfg, deps)
	var grp *CheckResult
	if cfg.Group != "" {
		detail, tag, err := checkGroupAndTag(ctx, cfg, logger)
		r := clean("group", detail, err)
		grp = &r
		if len(pc.Tags) == 0 {
			pc.Tags = []string{tag} // a member may start without tags: probe with one of the group's
		}
	}
	detail, err := probeAPI(ctx, pc)
	api := clean("api", detail, err)
	api.Hint = red.String(apiHint(pc, err))
	out := []CheckResult{api}
	detail, err = checkSink(ctx, cfg, logger)
	out = append(out, clean("sink", detail, err))
	detail, err = checkState(ctx, cfg, logger)
	out = append(out, clean("state", detail, err))
	if grp != nil {
		out = append(out, *grp)
	}
	return out
}

// checkSink reaches the broker and reads the metadata of what run would publish to, or checks the output.
func checkSink(ctx context.Context, cfg *config.Config, logger *slog.Logger) (string, error) {
	switch cfg.Sink {
	case config.SinkJetStream, config.SinkNATS:
		nc, err := publisher.Connect(ctx, NATSConnConfig(cfg), logger)
		if err != nil {
			return "", err
		}
		defer nc.Close()
		rtt, err := nc.RTT()
		if err != nil {
			return "", fmt.Errorf("nats %s: %w", nc.ConnectedUrlRedacted(), err)
		}
		server := fmt.Sprintf("nats server %s (%s, version %s, rtt %s)", nc.ConnectedServerName(), nc.ConnectedUrlRedacted(), nc.ConnectedServerVersion(), rtt.Round(time.Microsecond))
		if cfg.Sink == config.SinkNATS {
			return server + "; core NATS publishes are at-most-once", nil
		}
		jc := jetStreamConfig(cfg)
		pr, err := publisher.ProbeJetStream(ctx, nc, jc)
		if errors.Is(err, publisher.ErrNoStream) && !jc.CreateStream {
			return "", fmt.Errorf("%s: %w (create-stream is off)", server, err)
		}
		if err != nil {
			return "", fmt.Errorf("%s: %w", server, err)
		}
		detail := fmt.Sprintf("%s; stream %s covers %s.> (%d messages, duplicate window %s)", server, pr.Stream, jc.SubjectPrefix, pr.Msgs, pr.Duplicates)
		if pr.Create {
			detail = fmt.Sprintf("%s; no stream covers %s.> yet: run creates stream %s on %s.>", server, jc.SubjectPrefix, pr.Stream, jc.SubjectPrefix)
		}
		switch {
		case pr.DeadLetterCreate:
			detail += fmt.Sprintf("; run creates stream %s for the dead letters on %s", pr.DeadLetterStream, jc.DeadLetterSubject)
		case pr.DeadLetterStream != "":
			detail += fmt.Sprintf("; dead letters go to stream %s", pr.DeadLetterStream)
		}
		return detail, nil
	case config.SinkKafka:
		kc := kafkaConfig(cfg)
		pr, err := publisher.ProbeKafka(ctx, kc)
		switch {
		case errors.Is(err, publisher.ErrTopicNotFound):
			return "", fmt.Errorf("kafka cluster of %d brokers: %w (kafka-create-topic is off)", pr.Brokers, err)
		case err != nil:
			return "", fmt.Errorf("kafka: %w", err)
		}
		detail := fmt.Sprintf("kafka cluster of %d brokers; topic %s has %d partitions", pr.Brokers, kc.Topic, pr.Partitions)
		if pr.TopicMissing {
			detail = fmt.Sprintf("kafka cluster of %d brokers; topic %s does not exist yet: run creates it", pr.Brokers, kc.Topic)
		}
		if pr.DeadLetterTopicMissing {
			detail += fmt.Sprintf("; run creates the dead-letter topic %s", kc.DeadLetterTopic)
		}
		return detail, nil
	case config.SinkFile:
		return fmt.Sprintf("events will be appended to %s", cfg.Output), nil
	default:
		return "events will be written to stdout", nil
	}
}

// checkState describes the checkpoint store without opening it (a running tagstream holds its lock).
func checkState(ctx context.Context, cfg *config.Config, logger *slog.Logger) (string, error) {
	switch cfg.CheckpointStore {
	case config.StoreMemory:
		return "memory store: cursors are lost on exit", nil
	case config.StoreJetStreamKV:
		nc, err := publisher.Connect(ctx, NATSConnConfig(cfg), logger)
		if err != nil {
			return "", err
		}
		defer nc.Close()
		js, err := jetstream.New(nc)
		if err != nil {
			return "", err
		}
		kv, err := js.KeyValue(ctx, cfg.KVBucket)
		if errors.Is(err, jetstream.ErrBucketNotFound) {
			return fmt.Sprintf("KV bucket %s does not exist yet: run creates it", cfg.KVBucket), nil
		}
		if err != nil {
			return "", fmt.Errorf("KV bucket %s: %w", cfg.KVBucket, err)
		}
		st, err := kv.Status(ctx)
		if err != nil {
			return "", fmt.Errorf("KV bucket %s: %w", cfg.KVBucket, err)
		}
		return fmt.Sprintf("KV bucket %s holds %d values", cfg.KVBucket, st.Values()), nil
	default:
		path := filepath.Join(cfg.StateDir, config.CheckpointFile)
		st, err := os.Stat(path)
		switch {
		case err == nil:
			return fmt.Sprintf("checkpoint file %s (%d bytes)", path, st.Size()), nil
		case errors.Is(err, os.ErrNotExist):
			return fmt.Sprintf("checkpoint file %s does not exist yet: run creates it (first start: %s)", path, cfg.Start), nil
		default:
			return "", fmt.Errorf("checkpoint file %s: %s", path, strings.TrimPrefix(err.Error(), "stat "+path+": "))
		}
	}
}

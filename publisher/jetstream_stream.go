package publisher

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// JetStreamProbe is what ProbeJetStream found out about the stream NewJetStream would publish into.
type JetStreamProbe struct {
	// Stream is the name of that stream: the one found, or the one NewJetStream would create.
	Stream string
	// Create reports that no stream covers the subjects yet: NewJetStream would create Stream (CreateStream is
	// set; without it ProbeJetStream returns ErrNoStream).
	Create bool
	// Msgs is the number of messages the existing stream holds (0 when Create).
	Msgs uint64
	// Duplicates is the stream's duplicate window: the configured DuplicateWindow when Create.
	Duplicates time.Duration
	// DeadLetterStream and DeadLetterCreate are the same for the dead-letter subject (empty and false when no
	// DeadLetterSubject is configured or DeadLetter overrides it).
	DeadLetterStream string
	DeadLetterCreate bool
}

// ProbeJetStream checks cfg as NewJetStream does, with the same code, but creates nothing and publishes
// nothing: it validates the fields and resolves the stream (see JetStreamConfig.Stream) on nc, which the caller
// owns. It returns what it found along with the error NewJetStream would return: ErrConfig for an invalid field
// or JetStream not enabled, ErrNoStream when no stream covers the subjects and CreateStream is off or a stream
// overlaps them without covering them, ErrUnreachable when the server does not answer.
func ProbeJetStream(ctx context.Context, nc *nats.Conn, cfg JetStreamConfig) (JetStreamProbe, error) {
	if nc == nil {
		return JetStreamProbe{}, configError("nc", "nil *nats.Conn")
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return JetStreamProbe{}, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return JetStreamProbe{}, classifyStart(fmt.Errorf("publisher: jetstream: %w", err))
	}
	r := streamResolver{js: js, cfg: cfg}
	if err := r.available(ctx); err != nil {
		return JetStreamProbe{}, classifyStart(err)
	}
	plan, err := r.resolve(ctx, cfg.Stream, DefaultStreamName, cfg.SubjectPrefix+".>", "SubjectPrefix")
	if err != nil {
		return JetStreamProbe{}, classifyStart(err)
	}
	probe := JetStreamProbe{Stream: plan.name, Create: plan.create, Duplicates: cfg.DuplicateWindow}
	if plan.info != nil {
		probe.Msgs, probe.Duplicates = plan.info.State.Msgs, plan.info.Config.Duplicates
	}
	if cfg.DeadLetter == nil && cfg.DeadLetterSubject != "" {
		dl, err := r.resolve(ctx, "", plan.name+deadLetterStreamSuffix, cfg.DeadLetterSubject, "DeadLetterSubject")
		if err != nil {
			return probe, classifyStart(err)
		}
		probe.DeadLetterStream, probe.DeadLetterCreate = dl.name, dl.create
	}
	return probe, nil
}

// streamPlan is what streamResolver.resolve decided: publish into the existing stream name (info describes it),
// or create it.
type streamPlan struct {
	name   string
	create bool
	info   *jetstream.StreamInfo
}

// streamResolver finds the stream that covers a subject filter, for NewJetStream, ProbeJetStream and Ready.
type streamResolver struct {
	js  jetstream.JetStream
	cfg JetStreamConfig
	log *slog.Logger
}

// available checks that JetStream answers for the account: an error wraps jetstream.ErrJetStreamNotEnabled (no
// JetStream server answers) or ErrJetStreamNotEnabledForAccount, or is the request's failure.
func (r *streamResolver) available(ctx context.Context) error {
	if _, err := r.js.AccountInfo(ctx); err != nil {
		return fmt.Errorf("publisher: jetstream account info: %w", err)
	}
	return nil
}

// resolve is the one decision about a stream (see JetStreamConfig.Stream): with a name, that stream, which must
// cover filter or (with CreateStream) not exist yet; without one, the stream covering filter, or a new stream
// named createName when no stream overlaps filter and CreateStream is set. field names the config field in
// errors.
func (r *streamResolver) resolve(ctx context.Context, name, createName, filter, field string) (streamPlan, error) {
	if name != "" {
		s, err := r.js.Stream(ctx, name)
		switch {
		case err == nil:
			info := s.CachedInfo()
			if !coversAny(info.Config.Subjects, filter) {
				return streamPlan{}, fmt.Errorf("%w: stream %q listens on %q, which does not cover %q (%s)",
					ErrNoStream, name, info.Config.Subjects, filter, field)
			}
			return streamPlan{name: name, info: info}, nil
		case !errors.Is(err, jetstream.ErrStreamNotFound):
			return streamPlan{}, fmt.Errorf("publisher: look up stream %q: %w", name, err)
		case !r.cfg.CreateStream:
			return streamPlan{}, fmt.Errorf("%w: stream %q does not exist and CreateStream is off", ErrNoStream, name)
		}
		overlap, err := r.overlapping(ctx, filter)
		if err != nil {
			return streamPlan{}, err
		}
		if len(overlap) > 0 {
			return streamPlan{}, fmt.Errorf("%w: stream %q cannot be created on %q (%s): %s; name that stream, or leave "+
				"the stream name empty to use the stream that covers the subjects", ErrNoStream, name, filter, field,
				describeStreams(overlap))
		}
		return streamPlan{name: name, create: true}, nil
	}
	overlap, err := r.overlapping(ctx, filter)
	if err != nil {
		return streamPlan{}, err
	}
	for _, info := range overlap {
		if coversAny(info.Config.Subjects, filter) {
			return streamPlan{name: info.Config.Name, info: info}, nil
		}
	}
	if len(overlap) > 0 {
		return streamPlan{}, fmt.Errorf("%w: %s, which overlaps %q (%s) without covering all of it; widen that "+
			"stream to %q or choose another subject prefix", ErrNoStream, describeStreams(overlap), filter, field, filter)
	}
	if !r.cfg.CreateStream {
		return streamPlan{}, fmt.Errorf("%w: no stream listens on %q (%s) and CreateStream is off", ErrNoStream, filter, field)
	}
	// The name may be taken by a stream on other subjects: creating it would fail less clearly.
	if s, err := r.js.Stream(ctx, createName); err == nil {
		return streamPlan{}, fmt.Errorf("%w: no stream covers %q (%s), and the stream %q that would be created "+
			"exists on %q", ErrNoStream, filter, field, createName, s.CachedInfo().Config.Subjects)
	} else if !errors.Is(err, jetstream.ErrStreamNotFound) {
		return streamPlan{}, fmt.Errorf("publisher: look up stream %q: %w", createName, err)
	}
	return streamPlan{name: createName, create: true}, nil
}

// overlapping returns the streams that listen on a subject under filter (or on filter itself), sorted by name.
func (r *streamResolver) overlapping(ctx context.Context, filter string) ([]*jetstream.StreamInfo, error) {
	names := r.js.StreamNames(ctx, jetstream.WithStreamListSubject(filter))
	var found []string
	for n := range names.Name() {
		found = append(found, n)
	}
	if err := names.Err(); err != nil && !errors.Is(err, jetstream.ErrEndOfData) {
		return nil, fmt.Errorf("publisher: list the streams on %q: %w", filter, err)
	}
	slices.Sort(found)
	out := make([]*jetstream.StreamInfo, 0, len(found))
	for _, n := range found {
		s, err := r.js.Stream(ctx, n)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			continue // deleted meanwhile
		}
		if err != nil {
			return nil, fmt.Errorf("publisher: look up stream %q: %w", n, err)
		}
		out = append(out, s.CachedInfo())
	}
	return out, nil
}

// create creates the planned stream on filter with the configured storage, replicas and duplicate window.
func (r *streamResolver) create(ctx context.Context, name, filter string) error {
	_, err := r.js.CreateStream(ctx, jetstream.StreamConfig{
		Name:       name,
		Subjects:   []string{filter},
		Storage:    r.cfg.Storage,
		Replicas:   r.cfg.Replicas,
		Duplicates: r.cfg.DuplicateWindow,
	})
	if err != nil {
		return fmt.Errorf("publisher: create stream %q on %q: %w", name, filter, err)
	}
	r.log.Info("jetstream stream created", "stream", name, "subjects", filter)
	return nil
}

// ensure resolves the stream of filter and creates it when planned; it returns the stream's name.
func (r *streamResolver) ensure(ctx context.Context, name, createName, filter, field string) (string, error) {
	plan, err := r.resolve(ctx, name, createName, filter, field)
	if err != nil {
		return "", err
	}
	if plan.create {
		if err := r.create(ctx, plan.name, filter); err != nil {
			return "", err
		}
	}
	return plan.name, nil
}

// covers checks that stream still exists and covers filter (for Ready).
func (r *streamResolver) covers(ctx context.Context, stream, filter string) error {
	s, err := r.js.Stream(ctx, stream)
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
		return fmt.Errorf("%w: stream %q no longer exists", ErrNoStream, stream)
	case err != nil:
		return fmt.Errorf("publisher: look up stream %q: %w: %w", stream, ErrUnavailable, err)
	}
	if subjects := s.CachedInfo().Config.Subjects; !coversAny(subjects, filter) {
		return fmt.Errorf("%w: stream %q now listens on %q, which does not cover %q", ErrNoStream, stream, subjects, filter)
	}
	return nil
}

// coversAny reports whether one of a stream's subjects covers filter.
func coversAny(subjects []string, filter string) bool {
	for _, s := range subjects {
		if subjectCovers(s, filter) {
			return true
		}
	}
	return false
}

// describeStreams renders streams as `stream "A" listens on ["x.y"]; stream "B" ...`.
func describeStreams(infos []*jetstream.StreamInfo) string {
	parts := make([]string, len(infos))
	for i, info := range infos {
		parts[i] = fmt.Sprintf("stream %q listens on %q", info.Config.Name, info.Config.Subjects)
	}
	return strings.Join(parts, "; ")
}

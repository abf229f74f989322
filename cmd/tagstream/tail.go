package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/segmentio/kafka-go"
	"golang.org/x/sync/errgroup"

	"github.com/tagstream/tagstream/internal/config"
	"github.com/tagstream/tagstream/publisher"
)

const tailHelp = `
Consume the events the pipeline published and print them, one line each (or the raw CloudEvents JSON with
--json). Reads JetStream with an ephemeral ordered consumer, core NATS with a plain subscription (new events
only) or Kafka with a reader per partition. --tag narrows to some tags: a subject filter on NATS, the message
key or ce_subject header on Kafka. Stops on Ctrl-C, after --max events, or after --idle without events.`

// tailOptions are the tail-only flags.
type tailOptions struct {
	tags          string
	fromBeginning bool
	json          bool
	max           int
	idle          time.Duration
}

func runTail(c *cli, args []string) int {
	fs := c.newFlagSet("tail", "[flags]", tailHelp)
	var o tailOptions
	fs.StringVar(&o.tags, "tag", "", "only events of these tags (comma-separated)")
	fs.BoolVar(&o.fromBeginning, "from-beginning", false, "start with the oldest stored event instead of new ones only")
	fs.BoolVar(&o.json, "json", false, "print each event as raw CloudEvents JSON (one per line)")
	fs.IntVar(&o.max, "max", 0, "stop after this many events (0 = no limit)")
	fs.DurationVar(&o.idle, "idle", 0, "stop when no event arrived for this long (0 = never)")
	loader := config.NewLoader(fs, config.GroupSink|config.GroupOps, config.Needs{}, config.Defaults())
	if code, stop := c.parseFlags(fs, args); stop {
		return code
	}
	cfg, err := loader.Load(c.environ)
	if err != nil {
		return c.configFailure(err)
	}
	var tags []string
	for _, t := range strings.Split(o.tags, ",") {
		if t = strings.TrimSpace(t); t != "" {
			tags = append(tags, t)
		}
	}
	if o.max < 0 {
		return c.configFailure(&config.Error{Key: "max", Origin: "--max", Problem: "must not be negative"})
	}
	switch cfg.Sink {
	case config.SinkFile, config.SinkStdout:
		return c.configFailure(&config.Error{Key: "sink", Origin: "--sink", Problem: "tail reads jetstream, nats or kafka; for a file use tail -f"})
	case config.SinkNATS:
		if o.fromBeginning {
			return c.configFailure(&config.Error{Key: "from-beginning", Origin: "--from-beginning", Problem: "core NATS keeps no history; use --sink jetstream"})
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := config.CheckReachable(ctx, cfg); err != nil {
		return c.configFailure(err)
	}
	logger := newLogger(c.stderr, cfg.LogFormat, cfg.LogLevel)
	p := newPrinter(c.stdout, o)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	p.cancel = cancel
	if o.idle > 0 {
		go p.watchIdle(ctx, o.idle)
	}
	switch cfg.Sink {
	case config.SinkKafka:
		err = tailKafka(ctx, cfg, tags, o, p)
	default:
		err = tailNATS(ctx, cfg, tags, o, p, logger)
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintf(c.stderr, "tagstream tail: %v\n", newRedactor(cfg).String(err.Error()))
		return exitFailure
	}
	return exitOK
}

// tailNATS reads JetStream (ordered consumer) or core NATS.
func tailNATS(ctx context.Context, cfg *config.Config, tags []string, o tailOptions, p *printer, logger *slog.Logger) error {
	nc, err := publisher.Connect(ctx, natsConnConfig(cfg), logger)
	if err != nil {
		return err
	}
	defer nc.Close()
	subjects := []string{cfg.SubjectPrefix + ".>"}
	if len(tags) > 0 {
		subjects = subjects[:0]
		for _, t := range tags {
			subjects = append(subjects, publisher.Subject(cfg.SubjectPrefix, t))
		}
	}
	if cfg.Sink == config.SinkNATS {
		ch := make(chan *nats.Msg, 1024)
		for _, s := range subjects {
			sub, err := nc.ChanSubscribe(s, ch)
			if err != nil {
				return fmt.Errorf("subscribe %s: %w", s, err)
			}
			defer sub.Unsubscribe()
		}
		for {
			select {
			case <-ctx.Done():
				return nil
			case m := <-ch:
				if p.event(m.Data, nil, "") {
					return nil
				}
			}
		}
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	stream, err := js.StreamNameBySubject(ctx, subjects[0])
	if err != nil {
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			return fmt.Errorf("no JetStream stream covers %s: has the pipeline run yet?", subjects[0])
		}
		return fmt.Errorf("look up the stream of %s: %w", subjects[0], err)
	}
	occ := jetstream.OrderedConsumerConfig{FilterSubjects: subjects, DeliverPolicy: jetstream.DeliverNewPolicy}
	if o.fromBeginning {
		occ.DeliverPolicy = jetstream.DeliverAllPolicy
	}
	cons, err := js.OrderedConsumer(ctx, stream, occ)
	if err != nil {
		return fmt.Errorf("consumer on stream %s: %w", stream, err)
	}
	it, err := cons.Messages()
	if err != nil {
		return fmt.Errorf("consume stream %s: %w", stream, err)
	}
	go func() {
		<-ctx.Done()
		it.Stop()
	}()
	for {
		m, err := it.Next()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return nil
			}
			return fmt.Errorf("read stream %s: %w", stream, err)
		}
		if p.event(m.Data(), nil, "") {
			return nil
		}
	}
}

// tailKafka reads every partition of the topic with one kafka-go Reader each.
func tailKafka(ctx context.Context, cfg *config.Config, tags []string, o tailOptions, p *printer) error {
	_, parts, missing, err := kafkaTopicInfo(ctx, cfg, cfg.KafkaTopic)
	if err != nil {
		return fmt.Errorf("kafka: %w", err)
	}
	if missing {
		return fmt.Errorf("kafka topic %s does not exist: has the pipeline run yet?", cfg.KafkaTopic)
	}
	dialer, err := kafkaDialer(cfg)
	if err != nil {
		return err
	}
	want := map[string]bool{}
	for _, t := range tags {
		want[t] = true
	}
	g, ctx := errgroup.WithContext(ctx)
	for part := range parts {
		g.Go(func() error {
			r := kafka.NewReader(kafka.ReaderConfig{
				Brokers:   cfg.KafkaBrokers,
				Topic:     cfg.KafkaTopic,
				Partition: part,
				Dialer:    dialer,
				MinBytes:  1,
				MaxBytes:  10 << 20,
				MaxWait:   250 * time.Millisecond,
			})
			defer r.Close()
			start := kafka.LastOffset
			if o.fromBeginning {
				start = kafka.FirstOffset
			}
			if err := r.SetOffset(start); err != nil {
				return err
			}
			for {
				m, err := r.ReadMessage(ctx)
				if err != nil {
					if ctx.Err() != nil {
						return nil
					}
					return fmt.Errorf("read %s[%d]: %w", cfg.KafkaTopic, part, err)
				}
				headers := map[string]string{}
				for _, h := range m.Headers {
					headers[h.Key] = string(h.Value)
				}
				if len(want) > 0 {
					subject := headers["ce_subject"]
					if subject == "" && cfg.KafkaKey == "tag" {
						subject = string(m.Key)
					}
					if subject == "" {
						subject = structuredSubject(m.Value)
					}
					if !want[subject] {
						continue
					}
				}
				if p.event(m.Value, headers, string(m.Key)) {
					return nil
				}
			}
		})
	}
	return g.Wait()
}

func structuredSubject(b []byte) string {
	var e struct {
		Subject string `json:"subject"`
	}
	json.Unmarshal(b, &e)
	return e.Subject
}

// printer prints events one per line and counts them. It is safe for concurrent use.
type printer struct {
	mu     sync.Mutex
	w      *bufio.Writer
	o      tailOptions
	n      int
	last   time.Time
	cancel context.CancelFunc
}

func newPrinter(w io.Writer, o tailOptions) *printer {
	return &printer{w: bufio.NewWriter(w), o: o, last: time.Now()}
}

// tailEvent is the part of an event the pretty form shows.
type tailEvent struct {
	ID      string          `json:"id"`
	Type    string          `json:"type"`
	Subject string          `json:"subject"`
	Time    string          `json:"time"`
	Source  string          `json:"source"`
	Spec    string          `json:"specversion"`
	CT      string          `json:"datacontenttype"`
	Data    json.RawMessage `json:"data"`
}

type tailData struct {
	MediaID string `json:"media_id"`
	Type    string `json:"type"`
	Link    string `json:"link"`
	Caption string `json:"caption"`
	User    struct {
		Username string `json:"username"`
	} `json:"user"`
	// Gap markers.
	FromCursor string `json:"from_cursor"`
	ToCursor   string `json:"to_cursor"`
	Missing    *int   `json:"missing"`
	Reason     string `json:"reason"`
}

// event prints one event given as a structured JSON body, or (Kafka binary mode) as ce_ headers plus the data.
// It reports whether the printer has printed --max events and the tail must stop.
func (p *printer) event(body []byte, headers map[string]string, key string) bool {
	var e tailEvent
	if id := headers["ce_id"]; id != "" {
		e = tailEvent{ID: id, Type: headers["ce_type"], Subject: headers["ce_subject"], Time: headers["ce_time"],
			Source: headers["ce_source"], Spec: headers["ce_specversion"], CT: headers["content-type"], Data: body}
	} else if err := json.Unmarshal(body, &e); err != nil {
		e = tailEvent{Subject: key}
		e.Data = nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.last = time.Now()
	if p.o.json {
		if headers["ce_id"] != "" {
			b, _ := json.Marshal(structured(e))
			p.w.Write(b)
		} else {
			p.w.Write(body)
		}
		p.w.WriteByte('\n')
	} else {
		p.w.WriteString(prettyLine(e, body))
		p.w.WriteByte('\n')
	}
	p.w.Flush()
	p.n++
	if p.o.max > 0 && p.n >= p.o.max {
		if p.cancel != nil {
			p.cancel()
		}
		return true
	}
	return false
}

// structured renders a binary-mode event as structured CloudEvents JSON.
func structured(e tailEvent) map[string]any {
	m := map[string]any{"specversion": e.Spec, "id": e.ID, "source": e.Source, "type": e.Type, "subject": e.Subject,
		"datacontenttype": e.CT, "data": e.Data}
	if e.Time != "" {
		m["time"] = e.Time
	}
	if len(e.Data) == 0 || !json.Valid(e.Data) {
		m["data"] = nil
	}
	return m
}

func prettyLine(e tailEvent, body []byte) string {
	if e.ID == "" {
		return "?  unreadable event: " + clip(string(body), 120)
	}
	var d tailData
	json.Unmarshal(e.Data, &d)
	when := e.Time
	if t, err := time.Parse(time.RFC3339Nano, e.Time); err == nil {
		when = t.UTC().Format("2006-01-02 15:04:05")
	}
	if strings.HasSuffix(e.Type, ".gap.v1") {
		missing := "unknown"
		if d.Missing != nil {
			missing = fmt.Sprint(*d.Missing)
		}
		return fmt.Sprintf("%s  #%s  GAP  %s media missing between cursors %s and %s: %s", when, e.Subject, missing, d.FromCursor, d.ToCursor, d.Reason)
	}
	caption := strings.Join(strings.Fields(d.Caption), " ")
	return fmt.Sprintf("%s  #%-16s %-8s %-24s @%-16s %q  %s", when, e.Subject, d.Type, d.MediaID, d.User.Username, clip(caption, 60), d.Link)
}

// clip shortens s to at most n runes, marking the cut.
func clip(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

func (p *printer) watchIdle(ctx context.Context, idle time.Duration) {
	t := time.NewTicker(min(idle/4+time.Millisecond, time.Second))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			p.mu.Lock()
			quiet := time.Since(p.last)
			p.mu.Unlock()
			if quiet >= idle {
				p.cancel()
				return
			}
		}
	}
}

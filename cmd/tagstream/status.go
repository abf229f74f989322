package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/sync/errgroup"

	"github.com/tagstream/tagstream/group"
	"github.com/tagstream/tagstream/internal/config"
	"github.com/tagstream/tagstream/internal/pipeline"
	"github.com/tagstream/tagstream/internal/status"
	"github.com/tagstream/tagstream/poller/checkpoint"
	"github.com/tagstream/tagstream/publisher"
)

const statusHelp = `
Show what a running tagstream is doing, read from its /status (the metrics-addr it runs with, given here by
--metrics-addr, TAGSTREAM_METRICS_ADDR or the config file): whether it is ready (each failing check named); per
tag its owner, cursor (or the saved cursor it resumes from), last and next poll, estimated posting rate, lag, gaps
and state, such as "catching up: 3 pages so far, 99 media pending", sorted by lag, longest first; per token its
fingerprint, budget left and state; in group mode, the group as that instance sees it. --json prints the report as
/status serves it, for scripts.

With --group NAME (or group in the config file) and nats-url, status shows the whole group instead, read from its
buckets in NATS without joining it and without writing anything: the live members, each tag's owner, saved cursor
and posting rate (tags without owner first, each with the member it waits for), each token's division among the
members and the removed tags whose cursors are kept. It then asks each live member's /status, at the URL the
member advertises (its group-status-url; an https one is trusted by the system roots and ca-file), all at once
and for at most 2s each, for each tag's last and next poll, rate, lag, gaps and state, sorted by lag as for one
instance, and each member's tokens with their budget left; a member that cannot be asked is named with the
reason, and its tags show what the buckets hold. --json prints all of it. --metrics-addr on the command line asks
one instance instead.

Exit status:
  0  the report was printed (ready or not: its first line says)
  1  something answered at the address, but not a tagstream; with --group: the group does not exist
  2  a bad setting (no metrics-addr; with --group, a bad group name or nats-url)
  3  nothing answered at the address: is tagstream running, with that metrics-addr? With --group: the NATS
     servers did not answer, or their JetStream cluster has no quorum`

// reportSource is where status reads an instance's report from: one running instance's /status
// (instanceSource). A group is read from its buckets (readGroup) instead.
type reportSource interface {
	Report(ctx context.Context) (status.Report, error)
	String() string
}

// instanceSource reads the /status of one running tagstream.
type instanceSource struct {
	addr   string
	client *http.Client // statusClient
}

func (s instanceSource) Report(ctx context.Context) (status.Report, error) {
	return status.Fetch(ctx, s.client, s.addr)
}

func (s instanceSource) String() string {
	u, err := status.StatusURL(s.addr)
	if err != nil {
		return s.addr
	}
	return u
}

func runStatus(c *cli, args []string) int {
	fs := c.newFlagSet("status", "[flags]", statusHelp)
	asJSON := fs.Bool("json", false, "print the report as JSON, as /status serves it (with --group: the group as its buckets hold it)")
	timeout := fs.Duration("timeout", 5*time.Second, "how long to wait for the answer")
	loader := config.NewLoader(fs, config.GroupStatus|config.GroupCluster, config.Needs{}, config.Defaults())
	if code, stop := c.parseFlags(fs, args); stop {
		return code
	}
	cfg, err := loader.Load(c.environ)
	if err != nil {
		return c.loadFailure(loader, err)
	}
	for _, w := range cfg.Warnings {
		fmt.Fprintf(c.stderr, "tagstream status: warning: %s\n", w)
	}
	if *timeout <= 0 {
		return c.configFailure(&config.Error{Key: "timeout", Origin: "--timeout", Problem: "must be positive"})
	}
	client, err := statusClient(cfg)
	if err != nil {
		return c.configFailure(&config.Error{Key: "ca-file", Problem: err.Error()})
	}
	addrFlag := false
	fs.Visit(func(f *flag.Flag) { addrFlag = addrFlag || f.Name == "metrics-addr" })
	if cfg.Group != "" && !addrFlag {
		return c.statusGroup(cfg, client, *timeout, *asJSON)
	}
	if cfg.MetricsAddr == "" {
		return c.configFailure(&config.Error{Key: "metrics-addr", Problem: "status reads a running tagstream's /status: " +
			"give the metrics-addr it runs with (--metrics-addr 127.0.0.1:9464, TAGSTREAM_METRICS_ADDR or --config), " +
			"or --group and --nats-url for a whole group"})
	}
	if _, err := status.StatusURL(cfg.MetricsAddr); err != nil {
		return c.configFailure(&config.Error{Key: "metrics-addr", Problem: err.Error()})
	}
	var src reportSource = instanceSource{addr: cfg.MetricsAddr, client: client}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	r, err := src.Report(ctx)
	switch {
	case errors.Is(err, status.ErrNotStatus):
		fmt.Fprintf(c.stderr, "tagstream status: %v\n", err)
		return exitFailure
	case err != nil:
		fmt.Fprintf(c.stderr, "tagstream status: nothing answered at %s: %s\n  is tagstream running, with --metrics-addr %s?\n",
			src, dialCause(err, *timeout), cfg.MetricsAddr)
		return exitUnreachable
	}
	if *asJSON {
		return c.printJSON(r)
	}
	var b strings.Builder
	if err := status.WriteTable(&b, r, r.Time); err != nil {
		return exitFailure
	}
	if r.Group != nil {
		b.WriteString("\n")
		writeInstanceGroup(&b, *r.Group, r.Time)
	}
	if _, err := io.WriteString(c.stdout, b.String()); err != nil {
		return exitFailure
	}
	return exitOK
}

// statusGroup prints the group of cfg as its buckets hold it.
func (c *cli) statusGroup(cfg *config.Config, client *http.Client, timeout time.Duration, asJSON bool) int {
	urls, err := config.ParseNATSURLs(cfg.NATSURL)
	if err != nil {
		return c.configFailure(&config.Error{Key: "nats-url", Problem: err.Error()})
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cc := pipeline.NATSConnConfig(cfg) // the NATS settings as run maps them
	cc.ConnectTimeout = min(cc.ConnectTimeout, timeout)
	if cc.ConnectTimeout <= 0 {
		cc.ConnectTimeout = timeout
	}
	quiet := slog.New(slog.DiscardHandler)
	nc, err := publisher.Connect(ctx, cc, quiet)
	switch {
	case errors.Is(err, publisher.ErrConfig):
		return c.configFailure(&config.Error{Key: "nats-url", Problem: cfg.Redactor().String(err.Error())})
	case err != nil:
		fmt.Fprintf(c.stderr, "tagstream status: the group's NATS servers did not answer (%s): %s\n", strings.Join(urls, ","),
			cfg.Redactor().String(natsCause(err, timeout)))
		return exitUnreachable
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		fmt.Fprintf(c.stderr, "tagstream status: %v\n", err)
		return exitFailure
	}
	rep, err := readGroup(ctx, js, cfg.Group, cfg.KVBucket, cfg.GroupRetention)
	switch {
	case errors.Is(err, group.ErrNoGroup):
		fmt.Fprintf(c.stderr, "tagstream status: group %s does not exist on %s (no bucket %s): start a member with --group %s, "+
			"or add tags with tagstream tags add --group %s\n", cfg.Group, nc.ConnectedUrlRedacted(), group.StateBucket(cfg.Group),
			cfg.Group, cfg.Group)
		return exitFailure
	case errors.Is(err, group.ErrConfig):
		fmt.Fprintf(c.stderr, "tagstream status: group %s on %s: %v\n", cfg.Group, nc.ConnectedUrlRedacted(), err)
		return exitFailure
	case err != nil:
		fmt.Fprintf(c.stderr, "tagstream status: group %s on %s did not answer: %s\n  does its JetStream cluster have a quorum "+
			"(two of three servers up)?\n", cfg.Group, nc.ConnectedUrlRedacted(), dialCause(err, timeout))
		return exitUnreachable
	}
	askMembers(&rep, client, timeout)
	if asJSON {
		return c.printJSON(rep)
	}
	if err := writeGroupTable(c.stdout, rep, time.Now()); err != nil {
		return exitFailure
	}
	return exitOK
}

// statusClient returns the client that asks an instance's or the members' /status: https URLs (tagstream behind a
// TLS proxy) are trusted by the system roots and, as for the API and the broker, ca-file.
func statusClient(cfg *config.Config) (*http.Client, error) {
	if cfg.CAFile == "" {
		return &http.Client{}, nil
	}
	tc, err := publisher.TLSConfig{CAFile: cfg.CAFile}.Build()
	if err != nil {
		return nil, err
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tc
	return &http.Client{Transport: tr}, nil
}

// printJSON prints v indented, for scripts.
func (c *cli) printJSON(v any) int {
	enc := json.NewEncoder(c.stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return exitFailure
	}
	return exitOK
}

// natsCause words why no NATS server answered: none listening, a timeout, or what dialCause finds.
func natsCause(err error, timeout time.Duration) string {
	if errors.Is(err, nats.ErrNoServers) {
		return "no server answered (connection refused or no server at these addresses)"
	}
	return dialCause(err, timeout)
}

// dialCause words why a request got no answer: refused, timed out, an unknown host.
func dialCause(err error, timeout time.Duration) string {
	var dns *net.DNSError
	var ne net.Error
	switch {
	case errors.As(err, &dns):
		return "cannot resolve " + dns.Name
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return fmt.Sprintf("no answer within %s", timeout)
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	}
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		return oe.Err.Error()
	}
	return err.Error()
}

// groupReport is what `status --group` shows: the group as its buckets hold it (group.Inspect), each tag with its
// cursor from the cursor bucket, and what each live member's /status adds (askMembers). Nothing is written and
// the group is not joined.
type groupReport struct {
	group.Inspection
	// Members shadows Inspection.Members in JSON: every live member with what its /status answered.
	Members []askedMember `json:"members"`
	// Tags shadows Inspection.Tags in JSON: every tag of the set with its cursor and its owner's figures.
	Tags []groupTag `json:"tags"`
	// CursorBucket is the bucket the cursors were read from (kv-bucket); CursorError says why they could not be
	// read (the table then shows none).
	CursorBucket string `json:"cursor_bucket"`
	CursorError  string `json:"cursor_error,omitempty"`
}

// groupTag is one tag of the group's set with its saved cursor. Its RateEstimate is the one the owner stored in
// the group or, before it stored one, the one saved with the cursor (RateAt is then the cursor's save time).
type groupTag struct {
	group.TagInfo
	// Cursor is the tag's saved cursor ("" when none yet) and CursorSaved when it last moved (its owner
	// committed new media).
	Cursor      string    `json:"cursor"`
	CursorSaved time.Time `json:"cursor_saved,omitzero"`
	// Segments counts the catch-up segments still to publish.
	Segments int `json:"catch_up_segments"`

	// Reported tells whether the fields below come from the tag's line on its owner's /status (and RateEstimate
	// is then the owner's estimate at the time of its report, RateAt); false when the tag has no owner or its
	// owner could not be asked (its members entry says why): they are then zero.
	Reported bool `json:"reported"`
	// OwnerCursor is the cursor up to which the broker acknowledged the tag's media, as its owner knows it: newer
	// than Cursor while its checkpoint write is being retried.
	OwnerCursor string          `json:"owner_cursor,omitempty"`
	CatchUp     *status.CatchUp `json:"catch_up,omitempty"`
	LastPoll    time.Time       `json:"last_poll,omitzero"`
	LastAttempt time.Time       `json:"last_attempt,omitzero"`
	NextPoll    time.Time       `json:"next_poll,omitzero"`
	LagSeconds  float64         `json:"lag_seconds"`
	Published   uint64          `json:"published"`
	Gaps        uint64          `json:"gaps"`
	LastError   string          `json:"last_error,omitempty"`
	// State says in words what the tag is doing: its owner's state when Reported, else what the buckets tell.
	State string `json:"state"`
}

// cursorReads is how many cursors readGroup reads at once.
const cursorReads = 16

// readGroup reads group name from its buckets on js, with the cursors of its tags from the cursor bucket.
func readGroup(ctx context.Context, js jetstream.JetStream, name, cursorBucket string, retention time.Duration) (groupReport, error) {
	in, err := group.Inspect(ctx, js, name, retention)
	if err != nil {
		return groupReport{}, err
	}
	rep := groupReport{Inspection: in, Members: make([]askedMember, len(in.Members)), Tags: make([]groupTag, len(in.Tags)),
		CursorBucket: cursorBucket}
	for i, m := range in.Members {
		rep.Members[i] = askedMember{MemberStatus: m}
	}
	for i, ti := range in.Tags {
		rep.Tags[i] = groupTag{TagInfo: ti}
	}
	store, err := checkpoint.NewJetStreamKV(ctx, js, checkpoint.KVConfig{Bucket: cursorBucket, NoCreate: true})
	if err != nil {
		if errors.Is(err, jetstream.ErrBucketNotFound) {
			rep.CursorError = fmt.Sprintf("no cursor bucket %q (kv-bucket): no member saved a cursor yet, or the members use another bucket", cursorBucket)
		} else {
			rep.CursorError = err.Error()
		}
		return rep, nil
	}
	defer store.Close()
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(cursorReads)
	for i := range rep.Tags {
		t := &rep.Tags[i] // each goroutine writes its own element
		g.Go(func() error {
			st, ok, err := store.Get(gctx, t.Tag)
			if err != nil || !ok {
				return err
			}
			t.Cursor, t.CursorSaved, t.Segments = st.Cursor, st.Updated, len(st.Segments)
			if t.RateAt.IsZero() && st.RateSeconds > 0 {
				// No estimate stored in the group yet (the owner stores one every few seconds): the one saved with
				// the cursor.
				t.RateEstimate, t.RateAt = st.RateMedia/st.RateSeconds, st.Updated
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		rep.CursorError = err.Error()
	}
	return rep, nil
}

// writeGroupTable writes r for a terminal, as of now: a line on the group, a note on each member that could not
// be asked, the members, the tags sorted by lag as an instance's table (those without owner first, then those
// whose lag is not known, by the time since their cursor moved, then by lag, longest first), the division of each
// token, each member's tokens and the removed tags whose cursors are kept.
func writeGroupTable(w io.Writer, r groupReport, now time.Time) error {
	var b strings.Builder
	lease := "no member joined yet"
	if r.Lease > 0 {
		lease = "lease " + r.Lease.String()
	}
	fmt.Fprintf(&b, "group %s: %s, %s, %s (%d without owner), %d removed\n", r.Group, plural(len(r.Members), "member"),
		lease, plural(len(r.Tags), "tag"), len(r.Unowned), len(r.Removed))
	if r.CursorError != "" {
		fmt.Fprintf(&b, "cursors not shown: %s\n", r.CursorError)
	}
	for _, m := range r.Members {
		if !m.Answered {
			fmt.Fprintf(&b, "member %s could not be asked for its /status: %s; its tags show what the buckets hold\n", m.Name,
				printable(m.Error))
		}
	}

	b.WriteString("\n")
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "MEMBER\tSTARTED\tHEARTBEAT\tTAGS\tSTATUS")
	for _, m := range r.Members {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\n", m.Name, sinceTime(m.Started, now), agoTime(m.Heartbeat, now), len(m.MemberStatus.Tags),
			printable(memberState(m)))
	}
	tw.Flush()
	if len(r.Members) == 0 {
		fmt.Fprintln(&b, "(no live member: start an instance with --group "+r.Group+")")
	}

	b.WriteString("\n")
	tags := slices.Clone(r.Tags)
	slices.SortStableFunc(tags, func(a, b groupTag) int {
		if c := cmp.Compare(boolKey(a.Owner != ""), boolKey(b.Owner != "")); c != 0 {
			return c
		}
		ak, bk := lagKnown(a), lagKnown(b)
		if c := cmp.Compare(boolKey(ak), boolKey(bk)); c != 0 {
			return c
		}
		if ak {
			if c := cmp.Compare(b.LagSeconds, a.LagSeconds); c != 0 {
				return c
			}
		} else if c := a.CursorSaved.Compare(b.CursorSaved); c != 0 {
			return c
		}
		return cmp.Compare(a.Tag, b.Tag)
	})
	tw = tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TAG\tOWNER\tSINCE\tCURSOR\tCURSOR SAVED\tLAST POLL\tNEXT POLL\tRATE/s\tLAG\tGAPS\tSTATE")
	for _, t := range tags {
		cursor := shorten(t.Cursor, 16)
		if t.Reported && t.OwnerCursor != "" && t.OwnerCursor != t.Cursor {
			cursor = shorten(t.OwnerCursor, 16) + " (unsaved)" // acknowledged, its checkpoint write is being retried
		}
		rate, lag, gaps := "-", "-", "-"
		if !t.RateAt.IsZero() {
			rate = fmt.Sprintf("%.2f", t.RateEstimate)
		}
		if lagKnown(t) {
			lag = status.Age(time.Duration(t.LagSeconds * float64(time.Second)))
		}
		if t.Reported {
			gaps = fmt.Sprint(t.Gaps)
		}
		state := t.State
		if state == "" {
			state = groupTagState(t, r.CursorError != "")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", t.Tag, dash(t.Owner), sinceTime(t.OwnerSince, now),
			dash(printable(cursor)), agoTime(t.CursorSaved, now), agoTime(t.LastPoll, now), untilTime(t.NextPoll, now), rate, lag,
			gaps, printable(state))
	}
	if len(tags) == 0 {
		fmt.Fprintln(tw, "(no tags: add some with tagstream tags add --group "+r.Group+")")
	}
	tw.Flush()

	if len(r.Tokens) > 0 {
		b.WriteString("\n")
		writeTokens(&b, r.Tokens)
	}

	writeMemberTokens(&b, r.Members, now)

	if len(r.Removed) > 0 {
		b.WriteString("\n")
		tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "REMOVED\tSINCE\tCURSOR KEPT UNTIL")
		for _, rt := range r.Removed {
			fmt.Fprintf(tw, "%s\t%s\t%s\n", rt.Tag, sinceTime(rt.Removed, now), rt.Until.UTC().Format("2006-01-02 15:04 UTC"))
		}
		tw.Flush()
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// writeMemberTokens writes one row per token of each member that answered: its index in the member's pool, its
// fingerprint, the member's share of its budget, the budget left (as the API last reported it) and its state.
func writeMemberTokens(b *strings.Builder, members []askedMember, now time.Time) {
	rows := 0
	for _, m := range members {
		rows += len(m.Tokens)
	}
	if rows == 0 {
		return
	}
	b.WriteString("\n")
	tw := tabwriter.NewWriter(b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "MEMBER\tTOKEN\tFINGERPRINT\tSHARE\tBUDGET LEFT\tSTATE")
	for _, m := range members {
		for _, t := range m.Tokens {
			left := "?"
			if t.Remaining >= 0 {
				left = fmt.Sprint(t.Remaining)
			}
			kind := ""
			if t.ClientID {
				kind = " (client id)"
			}
			state := t.State
			if t.ParkedUntil.After(now) && !t.Retired {
				state += " (" + untilTime(t.ParkedUntil, now) + ")"
			}
			fmt.Fprintf(tw, "%s\t%d%s\t%s\t%.2f\t%s / %d\t%s\n", m.Name, t.Index+1, kind, printable(t.Fingerprint), t.Share, left,
				t.Limit, printable(state))
		}
	}
	tw.Flush()
}

// memberState says in words how a member's /status answered: ready, not ready (each failing check), or not asked.
func memberState(m askedMember) string {
	if !m.Answered {
		return "not asked (see above)"
	}
	if m.Ready {
		return "ready"
	}
	var failing []string
	for _, c := range m.Checks {
		if !c.OK {
			failing = append(failing, c.Name+": "+c.Error)
		}
	}
	return "NOT READY: " + strings.Join(failing, "; ")
}

// lagKnown reports whether t's lag is known: its owner reported a poll of it.
func lagKnown(t groupTag) bool { return t.Reported && !t.LastPoll.IsZero() }

// writeInstanceGroup writes the group part of an instance's /status: the group as that member sees it.
func writeInstanceGroup(b *strings.Builder, g group.Status, now time.Time) {
	lease := "NO LEASE: it polls nothing"
	if g.LeaseValid {
		lease = fmt.Sprintf("lease held until %s", g.LeaseUntil.UTC().Format("15:04:05"))
		if g.LeaseSeconds > 0 {
			lease += fmt.Sprintf(" (lease %s)", time.Duration(g.LeaseSeconds*float64(time.Second)))
		}
	} else if !g.Joined {
		lease = "not a member (yet): it polls nothing"
	}
	fmt.Fprintf(b, "group %s, member %s: %s; %s, %d tag(s) without owner, %d removed\n\n", g.Group, g.Self, lease,
		plural(len(g.Members), "member"), len(g.Unowned), len(g.Removed))
	writeMembers(b, g.Members, now)
	if len(g.Unowned) > 0 {
		const most = 20
		names := g.Unowned[:min(len(g.Unowned), most)]
		more := ""
		if len(g.Unowned) > most {
			more = fmt.Sprintf(" and %d more", len(g.Unowned)-most)
		}
		fmt.Fprintf(b, "\nWITHOUT OWNER: %s%s\n", strings.Join(names, ", "), more)
	}
	if len(g.Tokens) > 0 {
		b.WriteString("\n")
		writeTokens(b, g.Tokens)
	}
}

// writeMembers writes one row per member as an instance sees it: name (this instance marked with *), when it
// joined, its last heartbeat, how many tags it owns and its poll rate under the pooled budget.
func writeMembers(b *strings.Builder, members []group.MemberStatus, now time.Time) {
	tw := tabwriter.NewWriter(b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "MEMBER\tSTARTED\tHEARTBEAT\tTAGS\tDEMAND polls/s")
	for _, m := range members {
		name := m.Name
		if m.Self {
			name += " *"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%.3f\n", name, sinceTime(m.Started, now), agoTime(m.Heartbeat, now), len(m.Tags), m.Demand)
	}
	tw.Flush()
}

// writeTokens writes one row per token: its fingerprint, the fraction of its budget each member holds, and the
// total.
func writeTokens(b *strings.Builder, tokens []group.TokenStatus) {
	var names []string
	for _, ts := range tokens {
		for n := range ts.Shares {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	names = slices.Compact(names)
	tw := tabwriter.NewWriter(b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(slices.Concat([]string{"TOKEN"}, names, []string{"TOTAL"}), "\t"))
	for _, ts := range tokens {
		cells := []string{ts.Fingerprint}
		for _, n := range names {
			cell := "-"
			if f, ok := ts.Shares[n]; ok {
				cell = fmt.Sprintf("%.2f", f)
			}
			cells = append(cells, cell)
		}
		fmt.Fprintln(tw, strings.Join(append(cells, fmt.Sprintf("%.2f", ts.Total)), "\t"))
	}
	tw.Flush()
}

// groupTagState says in words what a tag of the group is doing, as far as the buckets tell.
func groupTagState(t groupTag, noCursors bool) string {
	switch {
	case t.Owner == "" && t.Waiting != "":
		return "no owner: waiting for " + t.Waiting + " (gone) to expire"
	case t.Owner == "":
		return "no owner: waiting for a member with a token"
	case noCursors:
		return "owned"
	case t.Cursor == "" && t.Segments > 0:
		return "catching up: first poll"
	case t.Cursor == "":
		return "no cursor yet"
	case t.Segments > 0:
		return "catching up: " + plural(t.Segments, "segment") + " to publish"
	}
	return "ok"
}

func boolKey(b bool) int {
	if b {
		return 1
	}
	return 0
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// shorten keeps at most n runes of s, eliding the middle.
func shorten(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	head := (n - 1) / 2
	return string(r[:head]) + "…" + string(r[len(r)-(n-1-head):])
}

// sinceTime says how long before now t was, compactly ("2h5m"); "-" for the zero time.
func sinceTime(t, now time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return status.Age(now.Sub(t))
}

// untilTime says how long after now t is: "in 2s", "due" once passed, "-" for the zero time (a poll in flight,
// or not known).
func untilTime(t, now time.Time) string {
	switch {
	case t.IsZero():
		return "-"
	case !t.After(now):
		return "due"
	}
	return "in " + status.Age(t.Sub(now))
}

// agoTime is sinceTime with " ago".
func agoTime(t, now time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return status.Age(now.Sub(t)) + " ago"
}

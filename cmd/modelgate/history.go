package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/modelgate/modelgate/transitions"
)

// runHistory is `modelgate history MODEL [--alias NAME | --stage NAME] [--at TIME]
// [--json]`: the timeline of which version held each alias or stage when, who or what
// moved it, why and on which evidence, read from the audit trail and verified. With --at
// it answers which version held the target at that time. Exit 0; 1 when the model has
// no audit trail; 3 when MLflow cannot be read.
func runHistory(ctx context.Context, args, environ []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("history", flag.ContinueOnError)
	fs.SetOutput(stderr)
	alias := fs.String("alias", "", "only this alias")
	stage := fs.String("stage", "", "only this stage")
	at := fs.String("at", "", "the version that held the target at this time (RFC 3339, or a date: 2026-11-20)")
	asJSON := fs.Bool("json", false, "print JSON")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return exitUsage
	}
	if len(pos) != 1 {
		fmt.Fprintln(stderr, "usage: modelgate history MODEL [--alias NAME | --stage NAME] [--at TIME] [--json]")
		return exitUsage
	}
	model := pos[0]
	if *alias != "" && *stage != "" {
		fmt.Fprintln(stderr, "modelgate history: give --alias or --stage, not both")
		return exitUsage
	}
	var when time.Time
	if *at != "" {
		if when, err = parseWhen(*at); err != nil {
			fmt.Fprintf(stderr, "modelgate history: --at %q: %v\n", *at, err)
			return exitUsage
		}
	}
	cfg, err := loadConfig(environ)
	if err == nil {
		err = cfg.requireTrackingURI()
	}
	if err != nil {
		fmt.Fprintf(stderr, "modelgate: %v\n", err)
		return exitUsage
	}
	if strings.EqualFold(cfg.AuditExperiment, auditOff) {
		fmt.Fprintln(stderr, "modelgate history: MODELGATE_AUDIT_EXPERIMENT is off: there is no audit trail to read")
		return exitUsage
	}
	logger := newLogger(cfg, stderr)
	client, err := newClient(cfg, logger, nil, nil)
	if err != nil {
		fmt.Fprintf(stderr, "modelgate: %v\n", err)
		return exitUsage
	}
	keys := cfg.keys()
	if len(keys.Current) == 0 {
		fmt.Fprintln(stderr, "modelgate history: MODELGATE_SIGNING_KEY is not set: the audit runs are shown unverified")
	}
	audit := newAudit(cfg, client, keys, logger, nil)
	events, err := audit.Events(ctx, model, "")
	switch {
	case errors.Is(err, transitions.ErrNoAuditTrail):
		fmt.Fprintf(stderr, "modelgate history: %v\n", err)
		return exitPolicy
	case err != nil:
		fmt.Fprintf(stderr, "modelgate history: %v\n", err)
		return exitCode(err)
	case len(events) == 0:
		fmt.Fprintf(stderr, "modelgate history: model %s has no audit trail in experiment %s\n", model, cfg.AuditExperiment)
		return exitPolicy
	}
	var forged []transitions.AuditEvent
	for _, e := range events {
		if !e.Verified {
			forged = append(forged, e)
		}
	}
	timelines := transitions.History(events)
	want := ""
	switch {
	case *alias != "":
		want = "alias:" + *alias
	case *stage != "":
		want = "stage:" + *stage
	}
	targets := slices.Sorted(maps.Keys(timelines))
	if want != "" {
		targets = []string{want}
	}
	if len(forged) > 0 {
		fmt.Fprintf(stderr, "modelgate history: %d audit run(s) of %s do not verify (edited or invented) and are left out:", len(forged), model)
		for _, e := range forged {
			fmt.Fprintf(stderr, " %s v%s at %s;", e.Event, e.Version, e.At.Format(time.RFC3339))
		}
		fmt.Fprintln(stderr)
	}

	if !when.IsZero() {
		type answer struct {
			Model   string              `json:"model"`
			Target  string              `json:"target"`
			At      time.Time           `json:"at"`
			Version string              `json:"version"`
			Tenure  *transitions.Tenure `json:"tenure,omitempty"`
		}
		var answers []answer
		for _, t := range targets {
			a := answer{Model: model, Target: t, At: when.UTC()}
			if ten, ok := transitions.At(timelines[t], when); ok {
				a.Version, a.Tenure = ten.Version, &ten
			}
			answers = append(answers, a)
		}
		if *asJSON {
			return printJSON(stdout, stderr, answers)
		}
		for _, a := range answers {
			if a.Tenure == nil {
				fmt.Fprintf(stdout, "%s %s at %s: no version\n", model, a.Target, when.UTC().Format(time.RFC3339))
				continue
			}
			fmt.Fprintf(stdout, "%s %s at %s: version %s (%s by %s since %s; evidence %s)\n", model, a.Target,
				when.UTC().Format(time.RFC3339), a.Version, a.Tenure.How, a.Tenure.By, a.Tenure.From.Format(time.RFC3339), a.Tenure.EvidenceDigest)
		}
		return exitOK
	}

	if *asJSON {
		out := map[string][]transitions.Tenure{}
		for _, t := range targets {
			out[t] = timelines[t]
		}
		return printJSON(stdout, stderr, map[string]any{"model": model, "targets": out, "unverified_runs": len(forged)})
	}
	for i, t := range targets {
		if i > 0 {
			fmt.Fprintln(stdout)
		}
		fmt.Fprintf(stdout, "%s %s\n", model, t)
		if len(timelines[t]) == 0 {
			fmt.Fprintln(stdout, "  never held by a version modelgate knows of")
			continue
		}
		rows := [][]string{{"FROM", "UNTIL", "VERSION", "HOW", "BY", "EVIDENCE", "REASON"}}
		for _, ten := range timelines[t] {
			until := "now"
			if !ten.Until.IsZero() {
				until = ten.Until.Format("2006-01-02 15:04:05")
			}
			rows = append(rows, []string{ten.From.Format("2006-01-02 15:04:05"), until, cmpOr(ten.Version, "(none)"), ten.How,
				ten.By, ten.EvidenceDigest, clip(ten.Reason, 80)})
		}
		writeTable(stdout, rows)
	}
	return exitOK
}

// parseWhen reads an RFC 3339 time, or a date (midnight UTC).
func parseWhen(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse("2006-01-02", s); err == nil {
		return t, nil
	}
	return time.Time{}, errors.New("use an RFC 3339 time (2026-11-20T15:04:05Z) or a date (2026-11-20)")
}

func printJSON(stdout, stderr io.Writer, v any) int {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		fmt.Fprintf(stderr, "modelgate: %v\n", err)
		return exitPolicy
	}
	fmt.Fprintf(stdout, "%s\n", b)
	return exitOK
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func clip(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

// writeTable aligns rows in columns (by runes, not bytes).
func writeTable(w io.Writer, rows [][]string) {
	widths := make([]int, len(rows[0]))
	for _, row := range rows {
		for i, c := range row {
			widths[i] = max(widths[i], len([]rune(c)))
		}
	}
	for _, row := range rows {
		var b strings.Builder
		b.WriteString("  ")
		for i, c := range row {
			b.WriteString(c)
			if i < len(row)-1 {
				b.WriteString(strings.Repeat(" ", widths[i]-len([]rune(c))+2))
			}
		}
		fmt.Fprintln(w, strings.TrimRight(b.String(), " "))
	}
}

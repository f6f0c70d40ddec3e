package rules

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// MaxSummary is the longest modelgate.summary written. MLflow stores version tag values
// as text, but 5,000 characters is where the UI's tags table stays readable and what
// older stores accept.
const MaxSummary = 5000

// Report is a decision as a reviewer sees it: the checks, the status modelgate wrote,
// the review so far, and notes on what modelgate did (promotions, rollbacks).
type Report struct {
	Decision
	Status    string    `json:"status"` // the modelgate.status value
	DecidedAt time.Time `json:"decided_at"`
	Review    *Tally    `json:"review,omitempty"`
	Notes     []string  `json:"notes,omitempty"`

	approvers    []string
	minApprovals int
}

// Report wraps a decision of this gate with its status and review, for rendering.
func (g *Gate) Report(d Decision, status string, decidedAt time.Time, review *Tally, notes ...string) Report {
	return Report{Decision: d, Status: status, DecidedAt: decidedAt.UTC(), Review: review, Notes: notes,
		approvers: g.Review.Approvers, minApprovals: g.Review.MinApprovals}
}

// JSON renders the report as indented JSON.
func (r Report) JSON() ([]byte, error) { return json.MarshalIndent(r, "", "  ") }

// Summary is the one line for the modelgate.summary tag: notes first, then each check
// ("accuracy 0.93 < 0.95 (review); parity ok"). A line longer than MaxSummary is cut at
// an item boundary and says how many items it left out.
func (r Report) Summary() string {
	items := append([]string{}, r.Notes...)
	if r.Review != nil && r.Review.Rejection != nil {
		items = append(items, fmt.Sprintf("rejected by %s: %s", r.Review.Rejection.Name, clipText(r.Review.Rejection.Comment, 500)))
	}
	for _, c := range r.Checks {
		item := c.Message
		if c.Result != Pass {
			item += " (" + string(c.Action) + ")"
		}
		items = append(items, item)
	}
	if len(items) == 0 {
		items = append(items, r.Reason)
	}
	return joinWithin(items, "; ", MaxSummary)
}

// joinWithin joins items with sep, stopping before max runes with "… (+N more)".
func joinWithin(items []string, sep string, max int) string {
	var b strings.Builder
	for i, it := range items {
		more := fmt.Sprintf(" … (+%d more)", len(items)-i)
		next := it
		if i > 0 {
			next = sep + it
		}
		if utf8.RuneCountInString(b.String()+next) > max-utf8.RuneCountInString(more) && i < len(items)-1 ||
			utf8.RuneCountInString(b.String()+next) > max {
			if i == 0 { // a single item longer than the limit
				return clipText(it, max)
			}
			return b.String() + more
		}
		b.WriteString(next)
	}
	return b.String()
}

// Markdown renders the report section of the version's description (without the fence
// lines), within max characters. When the full table does not fit, the passing rows go
// first, then the table; the decision and the voting instructions always stay.
func (r Report) Markdown(max int) string {
	for _, detail := range []int{fullTable, failedRows, noTable} {
		if s := r.markdown(detail); utf8.RuneCountInString(s) <= max {
			return s
		}
	}
	return clipText(r.markdown(noTable), max)
}

const (
	fullTable = iota
	failedRows
	noTable
)

var statusTitle = map[string]string{
	"approved":            "approved",
	"pending_review":      "waiting for review",
	"rejected":            "rejected",
	"promoted":            "promoted",
	"expired":             "review expired",
	"rolled_back":         "rolled back",
	"not_gated":           "not gated",
	"superseded":          "superseded",
	"staged":              "staged",
	"recertification_due": "recertification due",
}

func (r Report) markdown(detail int) string {
	var b strings.Builder
	title := statusTitle[r.Status]
	if title == "" {
		title = r.Status
	}
	fmt.Fprintf(&b, "#### modelgate: %s\n\n", md(title))
	if r.Gate == "" {
		fmt.Fprintf(&b, "%s\n", md(r.Reason))
		return b.String()
	}
	fmt.Fprintf(&b, "Gate **%s** on %s: %s.\n", md(r.Gate), r.DecidedAt.Format("2006-01-02 15:04 UTC"), md(r.Reason))
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "\n%s\n", md(n))
	}
	if detail != noTable && len(r.Checks) > 0 {
		b.WriteString("\n| Check | Kind | Observed | Bound | Result |\n| --- | --- | --- | --- | --- |\n")
		hidden := 0
		for _, c := range r.Checks {
			if detail == failedRows && c.Result == Pass {
				hidden++
				continue
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", cell(c.Name), c.Kind, cell(c.Observed), cell(c.Bound), resultCell(c))
		}
		if hidden > 0 {
			fmt.Fprintf(&b, "\n%d passing check(s) left out for length; %s shows them all.\n", hidden, code("modelgate evaluate "+r.Model+" "+r.Version))
		}
	}
	r.writeReview(&b)
	fmt.Fprintf(&b, "\n<sub>evidence %s · gate %s</sub>\n", r.EvidenceDigest, r.PolicyDigest)
	return b.String()
}

func resultCell(c CheckResult) string {
	switch c.Result {
	case Pass:
		return "✅ pass"
	case Fail:
		return fmt.Sprintf("❌ fail → %s", c.Action)
	}
	return fmt.Sprintf("⚠️ missing → %s", c.Action)
}

func (r Report) writeReview(b *strings.Builder) {
	t := r.Review
	if t != nil && len(t.Ignored) > 0 {
		b.WriteString("\nIgnored vote tags:")
		for _, iv := range t.Ignored {
			fmt.Fprintf(b, " %s (%s);", code(iv.Key), md(iv.Reason))
		}
		b.WriteString("\n")
	}
	if t != nil && r.Status != "pending_review" {
		if len(t.Approvals) > 0 {
			b.WriteString("\n**Approved by**")
			for i, v := range t.Approvals {
				sep := ","
				if i == 0 {
					sep = ""
				}
				fmt.Fprintf(b, "%s %s", sep, md(v.Name))
				if v.Comment != "" {
					fmt.Fprintf(b, " (“%s”)", md(clipText(v.Comment, 200)))
				}
			}
			b.WriteString(".\n")
		}
		if t.Rejection != nil {
			fmt.Fprintf(b, "\n**Rejected by %s:** %s\n", md(t.Rejection.Name), md(clipText(t.Rejection.Comment, 500)))
		}
	}
	switch r.Status {
	case "pending_review":
		approvals := 0
		if t != nil {
			approvals = len(t.Approvals)
		}
		fmt.Fprintf(b, "\n**Review:** %d of %d approval(s)", approvals, r.minApprovals)
		if t != nil && len(t.Approvals) > 0 {
			b.WriteString(" (")
			for i, v := range t.Approvals {
				if i > 0 {
					b.WriteString(", ")
				}
				b.WriteString(md(v.Name))
			}
			b.WriteString(")")
		}
		fmt.Fprintf(b, "; approvers: %s.", md(strings.Join(r.approvers, ", ")))
		if t != nil && !t.ExpiresAt.IsZero() {
			fmt.Fprintf(b, " Expires %s.", t.ExpiresAt.Format("2006-01-02 15:04 UTC"))
		}
		b.WriteString("\n\n**To vote**, add a tag to this version (Tags, below), with your name in the key:\n")
		example := "<name>"
		if len(r.approvers) > 0 {
			example = r.approvers[0]
		}
		fmt.Fprintf(b, "- approve: %s = optional comment\n", code(ApprovePrefix+example))
		fmt.Fprintf(b, "- reject: %s = the reason (required)\n", code(RejectPrefix+example))
	case "rejected", "expired":
		b.WriteString("\nTo evaluate again after fixing the evidence, add the tag " + code("modelgate.reevaluate") + " (any value).\n")
	case "promoted":
		b.WriteString("\nTo roll back, add the tag " + code("modelgate.rollback") + " with the reason as value.\n")
	}
}

// md escapes text for Markdown and for the HTML sanitiser MLflow's UI runs over it.
func md(s string) string {
	return mdEscaper.Replace(s)
}

var mdEscaper = strings.NewReplacer(
	`\`, `\\`, "`", "\\`", "*", `\*`, "_", `\_`, "[", `\[`, "]", `\]`,
	"<", "&lt;", ">", "&gt;", "|", `\|`, "#", `\#`, "\r", " ", "\n", " ",
)

// code renders text as a code span: shown literally, so nothing inside is escaped;
// backticks and line breaks, which would end or break the span, are dropped.
func code(s string) string {
	return "`" + strings.NewReplacer("`", "", "\n", " ", "\r", " ", "|", "\\|").Replace(s) + "`"
}

// cell escapes a table cell; the observed value may hold user text (tag values).
func cell(s string) string {
	if s == "" {
		return "–"
	}
	return md(s)
}

// Text renders the report for a terminal: the outcome, why, and an aligned table.
func (r Report) Text() string {
	var b strings.Builder
	if r.Gate == "" {
		fmt.Fprintf(&b, "%s version %s: %s\n  %s\n", r.Model, r.Version, r.Outcome, r.Reason)
		return b.String()
	}
	fmt.Fprintf(&b, "%s version %s: %s (gate %s)\n", r.Model, r.Version, r.Outcome, r.Gate)
	fmt.Fprintf(&b, "  %s\n", r.Reason)
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "  %s\n", n)
	}
	if len(r.Checks) > 0 {
		b.WriteString("\n")
		rows := [][]string{{"CHECK", "KIND", "OBSERVED", "BOUND", "RESULT"}}
		for _, c := range r.Checks {
			res := string(c.Result)
			if c.Result != Pass {
				res += " → " + string(c.Action)
			}
			rows = append(rows, []string{c.Name, string(c.Kind), clipText(c.Observed, 60), c.Bound, res})
		}
		writeColumns(&b, rows)
	}
	if t := r.Review; t != nil {
		fmt.Fprintf(&b, "\nreview: %s, %d of %d approval(s)", t.Outcome, len(t.Approvals), t.Needed)
		if t.Rejection != nil {
			fmt.Fprintf(&b, "; rejected by %s: %s", t.Rejection.Name, t.Rejection.Comment)
		}
		for _, iv := range t.Ignored {
			fmt.Fprintf(&b, "\n  ignored %s: %s", iv.Key, iv.Reason)
		}
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "\nevidence %s, gate %s\n", r.EvidenceDigest, r.PolicyDigest)
	return b.String()
}

// writeColumns aligns rows on rune width (tabwriter counts bytes, which misaligns ≥).
func writeColumns(b *strings.Builder, rows [][]string) {
	widths := make([]int, len(rows[0]))
	for _, row := range rows {
		for i, c := range row {
			widths[i] = max(widths[i], utf8.RuneCountInString(c))
		}
	}
	for _, row := range rows {
		b.WriteString("  ")
		for i, c := range row {
			b.WriteString(c)
			if i < len(row)-1 {
				b.WriteString(strings.Repeat(" ", widths[i]-utf8.RuneCountInString(c)+2))
			}
		}
		b.WriteString("\n")
	}
}

// Restate rewrites a report section (as Markdown renders it) for a new status: the
// headline names the status and the note stands under it; the rest, the checks as they
// were decided, stays as it was. For a version whose state changes without a new
// judgement (superseded, given its target back, restored after tampering).
func Restate(section, status, note string) string {
	title := statusTitle[status]
	if title == "" {
		title = status
	}
	head := fmt.Sprintf("#### modelgate: %s\n\n%s\n", md(title), md(note))
	rest := section
	if strings.HasPrefix(rest, "#### modelgate: ") {
		if i := strings.Index(rest, "\n"); i >= 0 {
			rest = strings.TrimLeft(rest[i+1:], "\n")
		} else {
			rest = ""
		}
		// An earlier restatement's note goes with the headline it stood under.
		if i := strings.Index(rest, "\n\n"); i >= 0 && !strings.HasPrefix(rest, "Gate ") {
			rest = rest[i+2:]
		}
	}
	return head + "\n" + rest
}

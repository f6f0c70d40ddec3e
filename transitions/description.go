package transitions

import (
	"strings"
	"unicode/utf8"
)

// The report section of a version's description lies between these lines. Text outside
// them is the user's and is kept byte for byte.
const (
	FenceBegin = "<!-- modelgate:begin -->"
	FenceEnd   = "<!-- modelgate:end -->"
)

// MaxDescription is the longest description written: MLflow's model_versions.description
// column is VARCHAR(5000), enforced by PostgreSQL and MySQL stores (SQLite ignores it).
const MaxDescription = 5000

// span is a complete report section: the lines from a begin fence to its end fence.
type span struct{ start, end int } // byte offsets; end is after the end fence's line break

// sections finds the complete sections of a description. An end fence closes the
// nearest begin fence before it; a begin with no end, or an end with no begin, is not a
// fence but text (someone deleted half of one), and stays as it is.
func sections(desc string) []span {
	var out []span
	open := -1
	for off := 0; off < len(desc); {
		lineEnd := strings.IndexByte(desc[off:], '\n')
		next := len(desc)
		if lineEnd >= 0 {
			next = off + lineEnd + 1
		}
		switch strings.TrimSpace(desc[off:next]) {
		case FenceBegin:
			open = off
		case FenceEnd:
			if open >= 0 {
				out = append(out, span{open, next})
				open = -1
			}
		}
		off = next
	}
	return out
}

// userText returns the description without its report sections.
func userText(desc string) string {
	var b strings.Builder
	prev := 0
	for _, s := range sections(desc) {
		b.WriteString(desc[prev:s.start])
		prev = s.end
	}
	b.WriteString(desc[prev:])
	return b.String()
}

// reportBudget is how many characters the report section may take so that the whole
// description stays within MaxDescription, or 0 when there is no room.
func reportBudget(desc string) int {
	used := utf8.RuneCountInString(userText(desc))
	overhead := utf8.RuneCountInString(FenceBegin+"\n"+FenceEnd+"\n") + 2 // two line breaks before the section
	return max(MaxDescription-used-overhead, 0)
}

// withReport returns the description with its report section set to report: the first
// complete section is replaced, any others are removed, and with none the section is
// appended after the user's text. Text outside the sections is kept byte for byte.
func withReport(desc, report string) string {
	section := FenceBegin + "\n" + strings.TrimRight(report, "\n") + "\n" + FenceEnd + "\n"
	spans := sections(desc)
	if len(spans) == 0 {
		switch {
		case desc == "":
			return section
		case strings.HasSuffix(desc, "\n\n"):
			return desc + section
		case strings.HasSuffix(desc, "\n"):
			return desc + "\n" + section
		}
		return desc + "\n\n" + section
	}
	var b strings.Builder
	prev := 0
	for i, s := range spans {
		b.WriteString(desc[prev:s.start])
		if i == 0 {
			b.WriteString(section)
		}
		prev = s.end
	}
	b.WriteString(desc[prev:])
	return b.String()
}

// reportSection returns the content of the first complete report section, or "".
func reportSection(desc string) string {
	spans := sections(desc)
	if len(spans) == 0 {
		return ""
	}
	return desc[spans[0].start:spans[0].end]
}

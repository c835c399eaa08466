package ruler

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
	"gopkg.in/yaml.v3"
)

// GeneratedRulesPrefix starts the "file" name of generated rule groups in
// /api/v1/rules: a group from SetGeneratedGroups("slo", ...) is listed
// under the file "glassmesh:generated/slo".
const GeneratedRulesPrefix = "glassmesh:generated/"

// ruleLoader is the rules manager's GroupLoader: rule files come from disk
// through rulefmt.ParseFile, generated groups from memory, rendered to
// YAML and parsed by the same rulefmt.Parse so they get exactly the
// validation a file gets (names, expressions, templates).
type ruleLoader struct {
	parser parser.Parser
	logger *slog.Logger

	mu        sync.Mutex
	generated map[string][]byte // identifier -> rule file YAML
}

func newRuleLoader(logger *slog.Logger) *ruleLoader {
	return &ruleLoader{
		parser:    parser.NewParser(parser.Options{}),
		logger:    logger,
		generated: map[string][]byte{},
	}
}

// Load implements rules.GroupLoader.
func (l *ruleLoader) Load(identifier string, ignoreUnknownFields bool, scheme model.ValidationScheme) (*rulefmt.RuleGroups, []error) {
	if !strings.HasPrefix(identifier, GeneratedRulesPrefix) {
		return rulefmt.ParseFile(identifier, ignoreUnknownFields, scheme, l.parser, l.logger)
	}
	l.mu.Lock()
	content, ok := l.generated[identifier]
	l.mu.Unlock()
	if !ok {
		return nil, []error{fmt.Errorf("%s: no such generated rule groups", identifier)}
	}
	return parseGenerated(identifier, content, scheme, l.parser, l.logger)
}

// Parse implements rules.GroupLoader.
func (l *ruleLoader) Parse(query string) (parser.Expr, error) {
	return l.parser.ParseExpr(query)
}

// setGenerated validates groups and stores them under source; no groups
// removes the source. It returns the errors rulefmt finds, with nothing
// stored.
func (l *ruleLoader) setGenerated(source string, groups []rulefmt.RuleGroup) error {
	if source == "" || strings.ContainsAny(source, "/ \t\n") {
		return fmt.Errorf("generated rules: source %q must be a non-empty word", source)
	}
	id := GeneratedRulesPrefix + source
	if len(groups) == 0 {
		l.mu.Lock()
		delete(l.generated, id)
		l.mu.Unlock()
		return nil
	}
	content, err := yaml.Marshal(rulefmt.RuleGroups{Groups: groups})
	if err != nil {
		return fmt.Errorf("%s: %w", id, err)
	}
	if _, errs := parseGenerated(id, content, model.UTF8Validation, l.parser, l.logger); len(errs) > 0 {
		return errors.Join(errs...)
	}
	l.mu.Lock()
	l.generated[id] = content
	l.mu.Unlock()
	return nil
}

// identifiers lists the generated rule sources, sorted.
func (l *ruleLoader) identifiers() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	ids := make([]string, 0, len(l.generated))
	for id := range l.generated {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

func parseGenerated(id string, content []byte, scheme model.ValidationScheme, p parser.Parser, logger *slog.Logger) (*rulefmt.RuleGroups, []error) {
	rgs, errs := rulefmt.Parse(content, false, scheme, p, logger)
	for i := range errs {
		errs[i] = fmt.Errorf("%s: %w", id, errs[i])
	}
	return rgs, errs
}

// expandRuleFiles resolves the --rules globs to files, sorted and
// without duplicates. A pattern without glob characters that names no
// file is an error: Prometheus ignores it silently, which hides typos.
func expandRuleFiles(patterns []string) ([]string, error) {
	seen := map[string]bool{}
	var files []string
	var errs []error
	for i, pat := range patterns {
		matches, err := filepath.Glob(pat)
		if err != nil {
			errs = append(errs, fmt.Errorf("rules[%d]: %q: %w", i, pat, err))
			continue
		}
		if len(matches) == 0 && !hasGlobMeta(pat) {
			_, err := os.Stat(pat)
			errs = append(errs, fmt.Errorf("rules[%d]: %w", i, err))
			continue
		}
		for _, m := range matches {
			if !seen[m] {
				seen[m] = true
				files = append(files, m)
			}
		}
	}
	slices.Sort(files)
	return files, errors.Join(errs...)
}

func hasGlobMeta(p string) bool { return strings.ContainsAny(p, `*?[\`) }

package group

// CheckName reports why v cannot be a group name or a member name (Config.Group, Config.Name), or nil: letters,
// digits, '-' and '_', at most 64 characters. The error wraps ErrConfig. It is the one rule for both names, for
// callers that validate settings before they build a coordinator.
func CheckName(v string) error { return checkName("name", v) }

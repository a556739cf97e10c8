"""The reading half: records → leaderboards, statistics, findings, summary, report page and plots, baselines and
`bench check`. Imports pandas, scipy and matplotlib, never torch or a running folder."""

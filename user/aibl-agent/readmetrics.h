/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
#ifndef AIBL_AGENT_READMETRICS_H
#define AIBL_AGENT_READMETRICS_H

/*
 * aibl-agent --read-metrics FILE...: prints what the agent reads from
 * consecutive recorded scrapes of one server as one JSON object; returns
 * the exit status (1 with a one-line reason on stderr when a page cannot
 * be used).
 */
int agent__read_metrics(int nfiles, char **files);

#endif

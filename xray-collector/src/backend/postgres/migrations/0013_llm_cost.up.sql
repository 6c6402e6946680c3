-- LLM cost (DESIGN.md, "Cost"): each LLM usage row's cost in US dollars,
-- from the prices the collector keeps in xray.model_prices (its built-in
-- table, overridden or extended by XRAY_PRICES, written at start), priced
-- when the row is written. A model without a price has no cost (NULL),
-- never a guessed one.
ALTER TABLE xray.llm_usage ADD COLUMN cost_usd double precision;

CREATE TABLE xray.model_prices (
    model                      text PRIMARY KEY,
    prompt_usd_per_million     double precision NOT NULL CHECK (prompt_usd_per_million >= 0),
    completion_usd_per_million double precision NOT NULL CHECK (completion_usd_per_million >= 0),
    source                     text NOT NULL
);

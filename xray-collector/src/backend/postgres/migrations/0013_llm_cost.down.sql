DROP TABLE xray.model_prices;
ALTER TABLE xray.llm_usage DROP COLUMN cost_usd;

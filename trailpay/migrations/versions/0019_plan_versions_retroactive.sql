-- The change log says of each version whether it was retroactive: published with
-- ?retroactive=true over facts already recorded in its period, which it re-rated. The
-- journaled command holds the document only, so the publication records it here.
-- Versions published before this revision read as not retroactive.
ALTER TABLE plan_versions
    ADD COLUMN retroactive boolean NOT NULL DEFAULT false,
    ADD COLUMN rerated_facts integer NOT NULL DEFAULT 0;

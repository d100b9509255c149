-- The baseline describes tables that Medbook owns; rolling booking back never drops them.
SELECT 1;

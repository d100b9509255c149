SET LOCAL lock_timeout = '5s';
DROP SCHEMA IF EXISTS booking_reporting;
DROP SCHEMA IF EXISTS booking_api;
DROP SCHEMA IF EXISTS booking;

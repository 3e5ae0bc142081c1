"""Gate passages of counted lots (车辆入场/出场记录): entries and exits that move the free count,
voids and corrections, stays linked by a keyed hash of the plate."""

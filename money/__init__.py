"""The money side of the law, pure: no I/O beyond reading this package's own data files, no SQL, no HTTP.

What lives here: the Kazakhstan working-day calendar (`calendar`, data per year under `data/calendar/`), the daily
value of mined digital assets by the method in force on the date (`valuation`, methods and their effective dates as
data), income per pool distribution (`income`), the distribution expected from measured hash rate (`expected`), the
share of sales through AIFC-licensed exchanges (`sales`), the mining fee by energy source (`fees`, rates as data),
the commercial meter against Kuat's own sum (`meter`) and the monthly reports (`reports`). The importers
(`importers/`) turn files into validated records or refuse them with the file, the line and the reason.

Amounts of money and of assets are `decimal.Decimal` (an inspector recomputes them to the last digit); energy from
telemetry arrives as floats and is turned into Decimal kWh at 0.001 kWh (`numbers.kwh`). Dates are Astana calendar
dates (`timebase`). The controller (controller/money/) stores inputs and results and serves them.
"""
